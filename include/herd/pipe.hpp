/// @file herd/pipe.hpp
/// `herd::make_pipe<T>`: Python's `multiprocessing.Pipe`, two connected ends that send and
/// receive values, awaitable in the parent and blocking in children.
#pragma once

#include <herd/detail/chrono.hpp>
#include <herd/detail/typed_channel.hpp>

#include <optional>
#include <utility>

namespace herd {

/// One end of a pipe. After a fork both processes hold both ends: each should close() the end
/// it does not use, or a recv() never learns that its peer is gone.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe.
template <typename T>
class connection {
 public:
  using executor_type = asio::any_io_executor;
  using value_type = T;

  connection(const executor_type& ex, std::shared_ptr<detail::channel> ch) : channel_(ex, std::move(ch)) {}

  executor_type get_executor() const noexcept { return channel_.get_executor(); }

  /// Sends `value` to the other end.
  /// @par Completion signature `void(error_code)`: errc::closed if this end is closed or cannot
  ///   send, or the peer is gone.
  /// @par Cancellation terminal, partial, total: nothing is sent.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_send(const T& value, Token&& token = {}) {
    return channel_.send_async(value, std::forward<Token>(token));
  }

  /// Receives the next value.
  /// @par Completion signature `void(error_code, T)`: errc::closed once every copy of the
  ///   other end is closed and nothing is left; errc::bad_message for an undecodable value.
  /// @par Cancellation terminal, partial, total: nothing is taken.
  template <asio::completion_token_for<void(error_code, T)> Token = default_token>
  auto async_recv(Token&& token = {}) {
    return channel_.receive_async(std::forward<Token>(token));
  }

  void send(const T& value) { check(channel_.send_blocking(value, std::nullopt, true), "send"); }
  void send(const T& value, error_code& ec) { ec = channel_.send_blocking(value, std::nullopt, true); }

  T recv() { return take(std::nullopt, true, "recv"); }
  /// Waits at most `timeout`: errc::timed_out.
  T recv(std::chrono::milliseconds timeout) { return take(timeout, true, "recv"); }
  T recv(error_code& ec) {
    T value{};
    ec = channel_.receive_blocking(value, std::nullopt, true);
    return value;
  }
  /// Never waits: empty when nothing is there.
  std::optional<T> try_recv() {
    T value{};
    if (channel_.receive_blocking(value, std::nullopt, false)) return std::nullopt;
    return value;
  }

  /// Closes this process's copy of this end (Python's close()).
  void close() noexcept { channel_.close(); }
  bool closed() const noexcept { return channel_.closed(); }

 private:
  static void check(error_code ec, const char* operation) {
    if (ec) detail::throw_error(ec, operation);
  }
  T take(std::optional<std::chrono::milliseconds> timeout, bool block, const char* operation) {
    T value{};
    check(channel_.receive_blocking(value, timeout, block), operation);
    return value;
  }

  detail::typed_channel<T> channel_;
};

/// Two connected ends (Python's `Pipe(duplex)`). Duplex: both send and receive. Not duplex:
/// the first end only receives and the second only sends, like Python's `(r, w)`.
template <typename T>
std::pair<connection<T>, connection<T>> make_pipe(const asio::any_io_executor& ex, bool duplex = true,
                                                  const channel_options& options = {}) {
  auto ends = detail::channel::make_pipe(duplex, options);
  return {connection<T>(ex, std::move(ends[0])), connection<T>(ex, std::move(ends[1]))};
}

}  // namespace herd
