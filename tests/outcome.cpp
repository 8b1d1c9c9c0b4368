// The child-outcome format on its own, without fork or sockets: what a child builds, how it is
// split between the socket and a memfd, and what the parent makes of any bytes it receives.
#include "detail/outcome.hpp"  // first: the header stands alone

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace {

using herd::detail::outcome_kind;
using herd::detail::outcome_record;
using herd::detail::parsed_outcome;

std::string joined(outcome_record record) { return std::string(record.head) + std::string(record.body); }

// Every byte value, repeated up to `size` bytes.
std::string binary(std::size_t size) {
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 7 % 256);
  return bytes;
}

// What the parent reads when the socket takes `sent` bytes of `record` and the rest travels in a
// memfd: the inline bytes and the marker in one read (with one descriptor), then the memfd.
std::string received_through_memfd(outcome_record record, std::size_t sent) {
  const std::string whole = joined(record);
  const std::string read = whole.substr(0, sent) + herd::detail::memfd_marker;
  std::string received(herd::detail::outcome_part_of_read(read, 1));
  received += joined(herd::detail::unsent_part(record, sent));
  return received;
}

void check_result(std::string_view received, std::string_view bytes) {
  const parsed_outcome parsed = herd::detail::parse_outcome(received);
  CHECK(parsed.kind == outcome_kind::result);
  CHECK(parsed.bytes == bytes);
}

void check_exception(std::string_view received, std::string_view type, std::string_view message) {
  const parsed_outcome parsed = herd::detail::parse_outcome(received);
  CHECK(parsed.kind == outcome_kind::exception);
  CHECK(parsed.type == type);
  CHECK(parsed.message == message);
}

void check_lost(std::string_view received) {
  check_exception(received, "unknown exception", "(its description was lost)");
}

// An 'E' record header with a type length of `length`, and nothing after it.
std::string exception_header(std::uint32_t length) {
  std::string record = "E";
  record.append(reinterpret_cast<const char*>(&length), sizeof length);
  return record;
}

}  // namespace

TEST_SUITE("outcome") {
  TEST_CASE("a void function's empty result round trips") {
    const outcome_record record = herd::detail::result_record({});
    CHECK(record.size() == 1);
    CHECK(joined(record) == "R");
    check_result(joined(record), "");
  }

  TEST_CASE("a one byte result round trips") {
    check_result(joined(herd::detail::result_record("x")), "x");
    check_result(joined(herd::detail::result_record(std::string(1, '\0'))), std::string(1, '\0'));
  }

  TEST_CASE("the inline limit is 16 KiB of record") {
    CHECK(herd::detail::outcome_inline_limit == 16 * 1024);
    CHECK(herd::detail::travels_inline(0));
    CHECK(herd::detail::travels_inline(16 * 1024));
    CHECK_FALSE(herd::detail::travels_inline(16 * 1024 + 1));
  }

  TEST_CASE("a result whose record is exactly at the inline limit travels inline and round trips") {
    const std::string bytes = binary(herd::detail::outcome_inline_limit - 1);
    const outcome_record record = herd::detail::result_record(bytes);
    CHECK(record.size() == herd::detail::outcome_inline_limit);
    CHECK(herd::detail::travels_inline(record.size()));
    check_result(joined(record), bytes);
  }

  TEST_CASE("a result one byte past the inline limit goes to a memfd and round trips") {
    const std::string bytes = binary(herd::detail::outcome_inline_limit);
    const outcome_record record = herd::detail::result_record(bytes);
    CHECK(record.size() == herd::detail::outcome_inline_limit + 1);
    CHECK_FALSE(herd::detail::travels_inline(record.size()));
    check_result(received_through_memfd(record, 0), bytes);
  }

  TEST_CASE("an outcome split between the socket and a memfd at any point arrives whole") {
    const std::string bytes = binary(100);
    const outcome_record record = herd::detail::result_record(bytes);
    for (std::size_t sent : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{50}, std::size_t{100}}) {
      CAPTURE(sent);
      CHECK(received_through_memfd(record, sent) == joined(record));
      check_result(received_through_memfd(record, sent), bytes);
    }
    const outcome_record rest = herd::detail::unsent_part(record, record.size());
    CHECK(rest.size() == 0);
    const std::string exception = herd::detail::encode_exception("std::runtime_error", "boom");
    for (std::size_t sent = 0; sent <= exception.size(); ++sent) {
      CAPTURE(sent);
      check_exception(received_through_memfd({exception, {}}, sent), "std::runtime_error", "boom");
    }
  }

  TEST_CASE("a read that brought a memfd loses only its marker") {
    CHECK(herd::detail::outcome_part_of_read("RabcM", 1) == "Rabc");
    CHECK(herd::detail::outcome_part_of_read("M", 1) == "");
    CHECK(herd::detail::outcome_part_of_read("RabcM", 0) == "RabcM");
    CHECK(herd::detail::outcome_part_of_read("", 0) == "");
  }

  TEST_CASE("an exception round trips with its type and message") {
    check_exception(herd::detail::encode_exception("std::runtime_error", "boom"), "std::runtime_error", "boom");
  }

  TEST_CASE("an exception with an empty message round trips") {
    check_exception(herd::detail::encode_exception("my::error", ""), "my::error", "");
  }

  TEST_CASE("an exception with an empty type name round trips") {
    check_exception(herd::detail::encode_exception("", "what"), "", "what");
  }

  TEST_CASE("an exception with binary bytes in its type name and message round trips") {
    const std::string type = binary(300);
    const std::string message = binary(1000);
    check_exception(herd::detail::encode_exception(type, message), type, message);
  }

  TEST_CASE("an exception with a type name longer than 64 KiB round trips") {
    const std::string type(70'000, 't');
    const std::string message = "long";
    const std::string record = herd::detail::encode_exception(type, message);
    CHECK(record.size() == 1 + 4 + type.size() + message.size());
    check_exception(record, type, message);
  }

  TEST_CASE("an exception record is E then the u32 type length in host order then type and message") {
    CHECK(herd::detail::encode_exception("ab", "xyz") == exception_header(2) + "abxyz");
  }

  TEST_CASE("nothing received is an empty outcome") {
    const parsed_outcome parsed = herd::detail::parse_outcome({});
    CHECK(parsed.kind == outcome_kind::empty);
  }

  TEST_CASE("bytes that begin with an unknown marker are unreadable") {
    for (std::string_view received : std::initializer_list<std::string_view>{"x", "Mabc", "r", std::string_view("\0R", 2)}) {
      CAPTURE(received);
      const parsed_outcome parsed = herd::detail::parse_outcome(received);
      CHECK(parsed.kind == outcome_kind::unreadable);
    }
  }

  TEST_CASE("a result whose bytes look like an exception record stays a result") {
    const std::string bytes = herd::detail::encode_exception("t", "m");
    check_result(joined(herd::detail::result_record(bytes)), bytes);
  }

  TEST_CASE("the record a child sends when it cannot describe its exception is a lost exception") {
    CHECK(herd::detail::lost_exception_record() == "E");
    check_lost(herd::detail::lost_exception_record());
  }

  TEST_CASE("an exception record with a truncated length header is a lost exception") {
    check_lost("E");
    check_lost(std::string_view("E\x01", 2));
    check_lost(std::string_view("E\x01\x00", 3));
    check_lost(std::string_view("E\x01\x00\x00", 4));
  }

  TEST_CASE("an exception record whose type length runs past the end is a lost exception") {
    check_lost(exception_header(1));
    check_lost(exception_header(5) + "abcd");
    check_lost(exception_header(0xffffffffu) + "type and message");
  }

  TEST_CASE("an exception record whose type ends the record has an empty message") {
    check_exception(exception_header(4) + "type", "type", "");
    check_exception(exception_header(0), "", "");
  }
}
