/// @file herd/queue.hpp
/// `herd::queue<T>` and `herd::joinable_queue<T>`: Python's `multiprocessing.Queue`,
/// `SimpleQueue` and `JoinableQueue`, awaitable in the parent and blocking in children.
///
/// A queue is one SOCK_SEQPACKET socketpair shared by every process that holds it (create it
/// before starting the children that use it): many producers and many consumers, each message
/// delivered whole to exactly one receiver, no lock. A producer that exits or is killed right
/// after a put loses nothing: the kernel holds the message. Messages of any size travel: small
/// ones inside packets (packed while consumers are behind), large ones through shared memory.
#pragma once

#include <herd/detail/chrono.hpp>
#include <herd/detail/typed_channel.hpp>

#include <optional>
#include <string>
#include <vector>

namespace herd {

/// Options of a queue (maxsize, packing, the large-message slab).
using queue_options = channel_options;

/// A multi-producer, multi-consumer queue of `T` between processes. Copies of the handle share
/// one queue.
///
/// A receiver takes a whole packet off the socket: up to `queue_options::batch` messages then
/// wait in that process for its next gets (lost if it is killed). put() sends each message at
/// once unless `queue_options::pack_puts` is set; put_many() packs.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe (one handle per thread).
template <typename T>
class queue {
 public:
  using executor_type = asio::any_io_executor;
  using value_type = T;

  explicit queue(const executor_type& ex, const queue_options& options = {})
      : channel_(ex, detail::channel::make_queue(options, false)) {}

  executor_type get_executor() const noexcept { return channel_.get_executor(); }

  /// Puts `value`; waits while a bounded queue is full.
  /// @par Completion signature `void(error_code)`: errc::closed after close().
  /// @par Cancellation terminal, partial, total: nothing is sent and nothing is lost.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_put(const T& value, Token&& token = {}) {
    return channel_.send_async(value, std::forward<Token>(token));
  }

  /// Takes the next message.
  /// @par Completion signature `void(error_code, T)`: errc::closed once the queue is closed and
  ///   drained; errc::bad_message for an undecodable message (it is gone; the queue is fine).
  ///   On an error the value is `T{}`.
  /// @par Cancellation terminal, partial, total: nothing is taken.
  template <asio::completion_token_for<void(error_code, T)> Token = default_token>
  auto async_get(Token&& token = {}) {
    return channel_.receive_async(std::forward<Token>(token));
  }

  /// Blocking put (Python's put()). Throws system_error (errc::closed, …).
  void put(const T& value) { check(channel_.send_blocking(value, std::nullopt, true), "put"); }
  /// Waits at most `timeout` for room: errc::timed_out (Python's queue.Full).
  void put(const T& value, std::chrono::milliseconds timeout) {
    check(channel_.send_blocking(value, timeout, true), "put");
  }
  void put(const T& value, error_code& ec) { ec = channel_.send_blocking(value, std::nullopt, true); }
  /// Never waits: errc::would_block when full (Python's put_nowait()).
  void put_nowait(const T& value) { check(channel_.send_blocking(value, std::nullopt, false), "put_nowait"); }
  /// Never waits: false when full.
  bool try_put(const T& value) { return !channel_.send_blocking(value, std::nullopt, false); }

  /// Puts every value of `values`, `queue_options::batch` to a packet — the fast way to put
  /// many small messages — and returns once all of them are in the kernel. Throws system_error
  /// whose message says how many were put before the error.
  template <typename Range>
  void put_many(const Range& values) {
    std::vector<std::string> messages;
    for (const auto& v : values) messages.push_back(herd::encode(static_cast<const T&>(v)));
    std::size_t sent = 0;
    if (error_code ec = channel_.send_many(messages, sent))
      detail::throw_error(ec, ("put_many (" + std::to_string(sent) + " of " +
                                       std::to_string(messages.size()) + " put)").c_str());
  }

  /// Blocking get (Python's get()). Throws system_error (errc::closed, errc::bad_message, …).
  T get() { return take(std::nullopt, true, "get"); }
  /// Waits at most `timeout`: errc::timed_out (Python's queue.Empty).
  T get(std::chrono::milliseconds timeout) { return take(timeout, true, "get"); }
  T get(error_code& ec) {
    T value{};
    ec = channel_.receive_blocking(value, std::nullopt, true);
    return value;
  }
  /// Never waits: errc::would_block when empty (Python's get_nowait()).
  T get_nowait() { return take(std::nullopt, false, "get_nowait"); }
  /// Never waits: empty when there is nothing to take.
  std::optional<T> try_get() {
    T value{};
    if (channel_.receive_blocking(value, std::nullopt, false)) return std::nullopt;
    return value;
  }

  /// Closes the queue for every process: puts fail with errc::closed; gets take what is left,
  /// then fail with errc::closed. What this process packed is sent first.
  void close() noexcept { channel_.close(); }
  bool closed() const noexcept { return channel_.closed(); }
  /// Sends what this process has packed now.
  void flush() { check(channel_.flush(), "flush"); }
  /// Messages put and not yet taken (approximate while others put and get).
  std::size_t qsize() const noexcept { return channel_.size(); }
  bool empty() const noexcept { return qsize() == 0; }

 protected:
  queue(const executor_type& ex, std::shared_ptr<detail::channel> ch) : channel_(ex, std::move(ch)) {}

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

/// A queue whose consumers report each message done (Python's JoinableQueue): join() waits
/// until every message put has been matched by a task_done().
template <typename T>
class joinable_queue : public queue<T> {
 public:
  using executor_type = typename queue<T>::executor_type;

  explicit joinable_queue(const executor_type& ex, const queue_options& options = {})
      : queue<T>(ex, detail::channel::make_queue(options, true)) {}

  /// One message taken earlier is done. Throws errc::invalid_argument if called more often
  /// than messages were put (Python's ValueError).
  void task_done() { this->check(this->channel_.task_done(), "task_done"); }

  /// Blocks until every message put is done.
  void join() { this->check(this->channel_.join(std::nullopt), "join"); }
  /// Waits at most `timeout`: errc::timed_out.
  void join(std::chrono::milliseconds timeout) { this->check(this->channel_.join(timeout), "join"); }

  /// Waits until every message put is done.
  /// @par Completion signature `void(error_code)`.
  /// @par Cancellation terminal, partial, total: stops waiting.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_join(Token&& token = {}) {
    return this->channel_.join_async(std::forward<Token>(token));
  }
};

}  // namespace herd
