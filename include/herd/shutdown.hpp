/// @file herd/shutdown.hpp
/// An orderly stop on SIGINT and SIGTERM: what a server needs around herd. The first signal
/// runs the stops the application registered (servers stop accepting, pools close and drain,
/// pipelines are cancelled) within a deadline, then ends the event loop; a second signal, or
/// the deadline, stops everything at once. `exit_code()` is what `main` returns: 0 after an
/// orderly stop, 128 + the signal when it was forced.
///
///     asio::io_context io;
///     herd::shutdown stop(io);
///     herd::pool pool(io.get_executor());
///     stop.add(pool);                                   // closed and drained, last
///     stop.on_stop("http", [&]() -> asio::awaitable<void> { acceptor.close(); co_return; });
///     io.run();
///     return stop.exit_code();
#pragma once

#include <herd/config.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace herd {

class pool;
class supervisor;

struct shutdown_options {
  /// The signals that begin the stop (add SIGHUP if the application wants it).
  std::vector<int> signals{SIGINT, SIGTERM};
  /// The orderly stop must be over within this; then everything is stopped at once.
  std::chrono::milliseconds deadline{std::chrono::seconds(10)};
};

namespace detail {
struct shutdown_core;
}

/// Listens for the signals on `io` (through an `asio::signal_set`: a forked child never runs
/// its handler, herd resets every disposition there) and stops the application in order.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe; its steps run on `io`, and `io.run()` may
///   run on several threads.
class shutdown {
 public:
  explicit shutdown(asio::io_context& io, shutdown_options options = {});
  shutdown(const shutdown&) = delete;
  shutdown& operator=(const shutdown&) = delete;
  /// Stops listening; a stop under way goes on.
  ~shutdown();

  /// A step of the orderly stop. Steps run one after another, the last registered first (a
  /// server made after its pool stops accepting before the pool drains). `force`, if given,
  /// runs instead of waiting when the stop is forced (a second signal, the deadline); the
  /// step's coroutine is then cancelled.
  void on_stop(std::string name, std::function<asio::awaitable<void>()> step, std::function<void()> force = {});
  /// A pool: closed, its queued tasks finish, its workers leave (joined); terminated (stop
  /// policy) when forced. The pool must outlive the stop.
  void add(pool& p);
  /// A supervisor: its children stopped by their stop policies, the last started first;
  /// SIGKILLed when forced. The supervisor must outlive the stop.
  void add(supervisor& s);

  /// Begins the orderly stop now, as a first signal would (a second call forces it).
  void request_stop();
  /// True once a stop has begun.
  bool stopping() const noexcept;
  /// True once it is over (orderly or forced).
  bool stopped() const noexcept;
  /// 0 after an orderly stop (or before any), 128 + the signal when forced (1 if no signal).
  int exit_code() const noexcept;
  /// The signal that began the stop (0 if it was asked for, or none yet).
  int signal() const noexcept;

 private:
  std::shared_ptr<detail::shutdown_core> core_;
};

}  // namespace herd
