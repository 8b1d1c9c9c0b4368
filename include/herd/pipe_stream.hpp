/// @file herd/pipe_stream.hpp
/// The parent's ends of a child's stdio pipes: `pipe_reader` (the child's stdout or stderr)
/// and `pipe_writer` (the child's stdin). Both are Asio streams, so `asio::async_read`,
/// `asio::async_write` and friends work on them too.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>

// Declared as in <boost/asio/buffer.hpp>, which this header does without (0.06 s for every
// includer): code that makes buffers has included it before it reads or writes.
namespace boost::asio {
class mutable_buffer;
class const_buffer;
}  // namespace boost::asio

namespace herd {
namespace detail {

/// The first non-empty buffer of a buffer sequence (one read or write moves at most that one),
/// else an empty one: Asio's buffer_sequence_begin/end rules (a buffer is a sequence of one).
template <typename Buffer, typename Sequence>
Buffer first_buffer(const Sequence& buffers) {
  if constexpr (std::is_convertible_v<const Sequence&, Buffer>) {
    return Buffer(buffers);
  } else {
    for (const auto& item : buffers)
      if (Buffer one(item); one.size() != 0) return one;
    return Buffer();
  }
}

struct pipe_state;  // the descriptor and what an end keeps; src/pipe_stream.cpp

/// What both ends of a pipe offer. Its state is shared with pending operations, which may
/// outlive the object; destroying or move-assigning an end closes it first.
class pipe_end {
 public:
  using executor_type = asio::any_io_executor;

  executor_type get_executor() const noexcept;
  bool is_open() const noexcept;
  int native_handle() const noexcept;
  /// Closes the pipe; pending operations complete with operation_aborted.
  void close() noexcept;
  /// Cancels pending operations (operation_aborted); data a reader buffered is kept.
  void cancel() noexcept;

 protected:
  explicit pipe_end(std::shared_ptr<pipe_state> state) noexcept;
  pipe_end(pipe_end&&) noexcept;
  pipe_end& operator=(pipe_end&&) noexcept;
  ~pipe_end();

  std::shared_ptr<pipe_state> state_;
  executor_type executor_;  // kept by a moved-from end, which completes its operations through it
};

}  // namespace detail

/// Reads what a child writes to one of its output pipes.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe.
class pipe_reader : public detail::pipe_end {
 public:
  /// Takes ownership of `fd`, the read end of a pipe (closed even if construction throws).
  pipe_reader(const executor_type& ex, int fd);
  pipe_reader(pipe_reader&&) noexcept = default;
  pipe_reader& operator=(pipe_reader&&) noexcept = default;

  /// Reads some bytes (data buffered by async_read_line comes first).
  /// @par Completion signature `void(error_code, std::size_t)`; `asio::error::eof` at the end.
  /// @par Cancellation terminal, partial, total: nothing is read.
  template <typename MutableBufferSequence,
            asio::completion_token_for<void(error_code, std::size_t)> Token = default_token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, auto buffer) { read_some_impl(buffer, std::move(handler)); }, token,
        detail::first_buffer<asio::mutable_buffer>(buffers));
  }

  /// Reads one line and returns it without its '\n'. At the end of the stream, a last line
  /// without '\n' is returned first; after that, the operation fails with `asio::error::eof`.
  /// @par Completion signature `void(error_code, std::string)`.
  /// @par Cancellation terminal, partial, total: a partly read line stays buffered.
  template <asio::completion_token_for<void(error_code, std::string)> Token = default_token>
  auto async_read_line(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, std::string)>(
        [this](auto handler) { read_line_impl(std::move(handler)); }, token);
  }

  /// Reads everything up to the end of the stream.
  /// @par Completion signature `void(error_code, std::string)`: success at EOF; on an error
  ///   (or cancellation) the string holds what was read before it, so nothing is lost.
  /// @par Cancellation terminal, partial, total: completes with operation_aborted and the data so far.
  template <asio::completion_token_for<void(error_code, std::string)> Token = default_token>
  auto async_read_all(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, std::string)>(
        [this](auto handler) { read_all_impl(std::move(handler)); }, token);
  }

 private:
  void read_some_impl(asio::mutable_buffer buffer, asio::any_completion_handler<void(error_code, std::size_t)> handler);
  void read_line_impl(asio::any_completion_handler<void(error_code, std::string)> handler);
  void read_all_impl(asio::any_completion_handler<void(error_code, std::string)> handler);
};

/// Writes to a child's stdin pipe. A write after the child closed its end fails with
/// `asio::error::broken_pipe`; the parent never receives SIGPIPE.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe.
class pipe_writer : public detail::pipe_end {
 public:
  /// Takes ownership of `fd`, the write end of a pipe (closed even if construction throws).
  /// Closing it (close(), destruction) lets the child read end of file.
  pipe_writer(const executor_type& ex, int fd);
  pipe_writer(pipe_writer&&) noexcept = default;
  pipe_writer& operator=(pipe_writer&&) noexcept = default;

  /// Writes some of `buffers`.
  /// @par Completion signature `void(error_code, std::size_t)`.
  /// @par Cancellation terminal, partial, total: nothing is written.
  template <typename ConstBufferSequence,
            asio::completion_token_for<void(error_code, std::size_t)> Token = default_token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, auto buffer) { write_some_impl(buffer, std::move(handler)); }, token,
        detail::first_buffer<asio::const_buffer>(buffers));
  }

  /// Writes all of `data` (the writer keeps its own copy while it works).
  /// @par Completion signature `void(error_code, std::size_t)`: the bytes written.
  /// @par Cancellation terminal, partial, total: the write stops; the completion reports the
  ///   bytes written so far.
  template <asio::completion_token_for<void(error_code, std::size_t)> Token = default_token>
  auto async_write(std::string data, Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, std::string bytes) { write_all_impl(std::move(bytes), std::move(handler)); },
        token, std::move(data));
  }

 private:
  void write_some_impl(asio::const_buffer buffer, asio::any_completion_handler<void(error_code, std::size_t)> handler);
  void write_all_impl(std::string data, asio::any_completion_handler<void(error_code, std::size_t)> handler);
};

}  // namespace herd
