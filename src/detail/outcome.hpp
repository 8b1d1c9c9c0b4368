// The outcome a function child sends its parent, over the socket pair made for that child
// (docs/design/decisions.md, "Function children: fork, and only the result travels"). Sans-io:
// no system calls here; fork_child.cpp sends, fork_process.cpp reads, this module says what the
// bytes are.
//
// An outcome is one record:
//   result:    'R', then the encoded result (empty for void);
//   exception: 'E', u32 length of the type name (host order), the type name, then what().
// The child sends it inline when it fits the inline limit and the socket takes all of it;
// otherwise what did not go inline follows in a memfd, sent with a one-byte marker. The parent
// appends every read (without the marker) and every memfd's contents, then parses the whole.
//
// What the child calls after fork on its result path is constexpr here: it compiles into
// fork_child.cpp with the child's own steps (see fork_child.cpp on why the child avoids run-time
// symbol binding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace herd::detail {

/// Outcomes up to this size travel inline in the socket: far below any unix socket's send buffer,
/// so the child never waits.
constexpr std::size_t outcome_inline_limit = 16 * 1024;

/// True if an outcome of `size` bytes is sent inline (it still goes to a memfd if the socket does
/// not take all of it at once).
constexpr bool travels_inline(std::size_t size) noexcept { return size <= outcome_inline_limit; }

/// The one byte sent with a memfd (SCM_RIGHTS needs at least one byte of data).
constexpr char memfd_marker = 'M';

/// A record in two parts, sent one after the other without being joined (a result is not copied).
struct outcome_record {
  std::string_view head;
  std::string_view body;
  constexpr std::size_t size() const noexcept { return head.size() + body.size(); }
};

/// The record of a function's result, `bytes` its encoding.
constexpr outcome_record result_record(std::string_view bytes) noexcept { return {std::string_view("R", 1), bytes}; }

/// The record of an exception of type `type` (a readable name) whose what() is `message`.
std::string encode_exception(std::string_view type, std::string_view message);

/// What a child sends when it cannot describe its exception (out of memory): an exception record
/// without its description, which the parent reports as lost.
constexpr std::string_view lost_exception_record() noexcept { return std::string_view("E", 1); }

/// What of `record` is left once its first `sent` bytes went inline (`sent` <= its size): the
/// rest, which travels in the memfd.
constexpr outcome_record unsent_part(outcome_record record, std::size_t sent) noexcept {
  const std::size_t head_from = sent < record.head.size() ? sent : record.head.size();
  const std::size_t body_from = sent > record.head.size() ? sent - record.head.size() : 0;
  return {std::string_view(record.head.data() + head_from, record.head.size() - head_from),
          std::string_view(record.body.data() + body_from, record.body.size() - body_from)};
}

/// Of one read from the outcome socket (`read` its bytes, `descriptors` the memfds it brought),
/// the bytes that belong to the outcome: a read that brought a memfd ends with its marker.
constexpr std::string_view outcome_part_of_read(std::string_view read, std::size_t descriptors) noexcept {
  return descriptors == 0 || read.empty() ? read : std::string_view(read.data(), read.size() - 1);
}

enum class outcome_kind : std::uint8_t {
  empty,       ///< nothing arrived: the child ended without an outcome (its exit status says how)
  result,      ///< `bytes` is the encoded result
  exception,   ///< `type` and `message` describe the child's exception
  unreadable,  ///< bytes that are no outcome
};

/// A parsed outcome. Its views point into the parsed bytes, or to static text.
struct parsed_outcome {
  outcome_kind kind = outcome_kind::empty;
  std::string_view bytes;
  std::string_view type;
  std::string_view message;
};

/// The type and message reported for an exception record whose description is missing or whose
/// lengths do not add up.
constexpr std::string_view lost_exception_type = "unknown exception";
constexpr std::string_view lost_exception_message = "(its description was lost)";

/// What the parent received, `received` all of it (inline bytes and memfd contents, in order).
parsed_outcome parse_outcome(std::string_view received) noexcept;

}  // namespace herd::detail
