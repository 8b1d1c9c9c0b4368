/// @file herd/process.hpp
/// Functions in child processes: Python's `multiprocessing.Process`, awaitable.
///
/// `herd::start(ex, f, args...)` forks and runs `f(args...)` in the child; the parent gets a
/// `herd::process<R>` at once and awaits its end (`async_join`) or its return value
/// (`async_result`). The child works on a copy of the parent's memory (fork), so `f`, its
/// arguments and its captures need no encoding; only the result travels back, through
/// `herd::codec`.
#pragma once

#include <herd/codec.hpp>
#include <herd/config.hpp>
#include <herd/detail/adapted_handler.hpp>
#include <herd/detail/chrono.hpp>
#include <herd/detail/function_child.hpp>
#include <herd/detail/travelling_call.hpp>
#include <herd/error.hpp>
#include <herd/exit_status.hpp>
#include <herd/process_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace herd {

/// What every function child's handle offers, whatever it returns.
///
/// Destroying a handle whose child still runs stops the child with its stop policy in the
/// background (on its executor) and reaps it; `detach()` lets it run on instead. No path leaves
/// a zombie: if the executor never runs again, the last internal reference kills and reaps.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe.
class process_base {
 public:
  using executor_type = asio::any_io_executor;

  // A moved-from handle keeps its executor, for the completions that report it empty.
  process_base(process_base&& other) noexcept;
  process_base& operator=(process_base&& other) noexcept;
  ~process_base();

  executor_type get_executor() const noexcept;
  /// False for a moved-from or detached handle.
  bool valid() const noexcept { return state_ != nullptr; }
  int pid() const noexcept;
  const std::string& name() const noexcept;
  bool daemon() const noexcept;
  /// What the child runs, for messages ("work(int)", a lambda's type, …).
  const std::string& function() const noexcept;

  /// True until the child has ended. Polls without blocking (Python's is_alive()).
  bool is_alive();
  /// Python's `exitcode`: empty while running, the exit code, or minus the signal number.
  std::optional<int> exit_code() const noexcept;
  /// The final status, once the child has ended and been reaped.
  std::optional<exit_status> status() const noexcept;

  /// Waits for the child to end (Python's join()).
  /// @par Completion signature `void(error_code, exit_status)`.
  /// @par Cancellation terminal, partial, total: stops waiting; the child is untouched and a
  ///   later join still works.
  template <asio::completion_token_for<void(error_code, exit_status)> Token = default_token>
  auto async_join(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, exit_status)>(
        [state = state_, ex = executor_](auto handler) { detail::async_join_erased(state, ex, std::move(handler)); },
        token);
  }

  /// Stops the child with its stop policy and completes with its final status.
  /// @par Completion signature `void(error_code, exit_status)`.
  /// @par Cancellation terminal, partial, total: stops waiting; the stop goes on.
  template <asio::completion_token_for<void(error_code, exit_status)> Token = default_token>
  auto async_stop(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, exit_status)>(
        [state = state_, ex = executor_](auto handler) { detail::async_stop_erased(state, ex, std::move(handler)); },
        token);
  }

  /// Blocks until the child has ended, for code without a running event loop (a child's body,
  /// a plain main). Throws `errc::not_running` on an empty handle.
  exit_status join();
  /// Blocks at most `timeout`; empty if the child still runs.
  std::optional<exit_status> join(std::chrono::milliseconds timeout);

  /// Starts the stop policy and returns at once (Python's terminate(), but graded).
  void terminate();
  /// SIGKILL to the child's process group.
  void kill();
  /// SIGINT to the child's process group.
  void interrupt();
  /// Any signal to the child's process group.
  void signal(int signo);
  /// Lets the child run on without this handle: herd reaps it when it ends; at the parent's
  /// normal exit it is joined (stopped, if it is a daemon).
  void detach() noexcept;

 protected:
  explicit process_base(std::shared_ptr<detail::function_process> state) noexcept;
  std::shared_ptr<detail::function_process> state_;
  executor_type executor_;

 private:
  friend struct detail::core_access;  // scopes adopt the child
};

/// A function child returning `Result` (`void` if it returns nothing).
template <typename Result = void>
class process : public process_base {
  static_assert(std::is_void_v<Result> || std::is_default_constructible_v<Result>,
                "herd::process: the function's result type must be default-constructible");

 public:
  using result_type = Result;
  using result_signature = typename detail::result_signature<Result>::type;

  explicit process(std::shared_ptr<detail::function_process> state) noexcept : process_base(std::move(state)) {}

  /// Waits for the child to end; `co_await p.async_result()` yields what its function returned
  /// or throws the most telling exception: `herd::child_error` (the child threw: type, what(),
  /// pid, function), `system_error` with `errc::child_killed` or `errc::child_exited` (it died or
  /// exited before returning; the message says how), `errc::bad_message` (undecodable result),
  /// or `operation_aborted` if the wait was cancelled.
  /// @par Cancellation terminal, partial, total: stops waiting; the child is untouched.
  asio::awaitable<Result> async_result() const { return await_result(state_, get_executor()); }

  /// The same with a completion token. The failure comes first as an `std::exception_ptr`
  /// (like co_spawn's), so the rich exception survives: use callbacks, `asio::as_tuple(…)` or
  /// `asio::use_future`. (Asio 1.26 cannot `co_await` an `(exception_ptr, T)` operation through
  /// `deferred` or `use_awaitable`; the overload without a token is the awaitable one.)
  /// @par Completion signature `void(std::exception_ptr, Result)` (`void(std::exception_ptr)` for void).
  template <asio::completion_token_for<result_signature> Token>
  auto async_result(Token&& token) const {
    return initiate_result(state_, get_executor(), std::forward<Token>(token));
  }

  /// Blocks until the child has ended and returns its result, or throws what async_result()
  /// would deliver.
  Result result() {
    join();
    std::string bytes;
    if (std::exception_ptr error = detail::outcome_of(*state_, bytes)) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<Result>) return herd::decode<Result>(bytes);
  }

 private:
  template <typename Token>
  static auto initiate_result(std::shared_ptr<detail::function_process> state, executor_type ex, Token&& token) {
    return asio::async_initiate<Token, result_signature>(
        [](auto handler, std::shared_ptr<detail::function_process> s, executor_type e) {
          detail::async_result_erased(s, e,
                                      detail::adapt(std::move(handler), [](auto&& h, std::exception_ptr error,
                                                                           std::string bytes) {
                                        deliver(std::move(h), error, bytes);
                                      }));
        },
        token, std::move(state), std::move(ex));
  }

  static asio::awaitable<Result> await_result(std::shared_ptr<detail::function_process> state, executor_type ex) {
    auto outcome = co_await initiate_result(std::move(state), std::move(ex), asio::as_tuple(asio::deferred));
    if (std::exception_ptr error = std::get<0>(outcome)) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<Result>) co_return std::move(std::get<1>(outcome));
  }

  template <typename Handler>
  static void deliver(Handler&& handler, std::exception_ptr error, const std::string& bytes) {
    if constexpr (std::is_void_v<Result>) {
      std::move(handler)(error);
    } else {
      if (error) return std::move(handler)(error, Result{});
      std::optional<Result> value;
      try {
        value.emplace(herd::decode<Result>(bytes));
      } catch (...) {
        return std::move(handler)(std::current_exception(), Result{});
      }
      std::move(handler)(std::exception_ptr(), std::move(*value));
    }
  }
};

/// The type `start(ex, f, args...)` returns.
template <typename F, typename... Args>
using process_for = process<typename detail::result_of_start<std::decay_t<F>, std::decay_t<Args>...>::type>;

/// Starts `f(args...)` — or `f.run(args...)` for a class with a run() member — in a new child
/// process and returns its handle at once; the parent's event loop never blocks. The child is a
/// fork unless `options.start_method` (or `herd::set_start_method`) says spawn or forkserver;
/// then `f` and `args` travel encoded (herd/process_options.hpp says what can).
///
/// `f` may return a value (any type herd::codec encodes; it comes back through async_result),
/// throw (rethrown as child_error), or be a coroutine returning `asio::awaitable<T>`, which then
/// runs on a fresh io_context of the child's own. The child resets every signal disposition to
/// default and empties its signal mask, leads its own process group, gets PR_SET_PDEATHSIG,
/// never touches the parent's io_context, and leaves with `_exit` after flushing stdio (so the
/// parent's destructors and atexit handlers never run twice). The parent flushes its own stdio
/// before forking, so buffered text is not printed twice.
///
/// Throws `boost::system::system_error`: `errc::daemon_cannot_start_children` in a daemon,
/// `errc::bad_stdio` for unusable stdio options, `errc::spawn_failed` if the start fails,
/// `errc::invalid_argument` if `f` or an argument cannot travel to a spawn or forkserver child
/// (the message says which and why).
template <typename F, typename... Args>
  requires detail::startable<std::decay_t<F>, std::decay_t<Args>...>
process_for<F, Args...> start(const asio::any_io_executor& ex, const process_options& options, F&& f,
                              Args&&... args) {
  using result = typename process_for<F, Args...>::result_type;
  static_assert(std::is_void_v<result> || encodable<result>,
                "herd::start: the function's result cannot travel back to the parent (see herd/codec.hpp)");
  if (const herd::start_method method = detail::start_method_of(options); method != herd::start_method::fork) {
    using fn = std::decay_t<F>;
    constexpr const char* why = detail::why_not_travelling<fn, std::decay_t<Args>...>();
    if constexpr (why == nullptr)
      return process_for<F, Args...>(detail::start_travelling(ex, options, method, typeid(f),
                                                              detail::function_address(f),
                                                              detail::travelling_call_of<fn>(f, args...)));
    else
      detail::throw_cannot_travel(method, typeid(f), detail::function_address(f), why);
  }
  // Forked: the child runs this on its copy of this very stack frame.
  auto body = [&](detail::result_sink& sink) { detail::run_in_child<result>(sink, f, args...); };
  auto state = detail::fork_process(ex, options, typeid(f), detail::function_address(f), detail::child_body(body));
  return process_for<F, Args...>(std::move(state));
}

/// start() with default options.
template <typename F, typename... Args>
  requires detail::startable<std::decay_t<F>, std::decay_t<Args>...>
process_for<F, Args...> start(const asio::any_io_executor& ex, F&& f, Args&&... args) {
  return herd::start(ex, process_options{}, std::forward<F>(f), std::forward<Args>(args)...);
}

/// The calling process, as herd sees it (Python's os.getpid(), current_process()).
namespace this_process {
int pid() noexcept;
int ppid() noexcept;
/// "main" in the original process; the name given to start() in a child.
const std::string& name() noexcept;
bool is_daemon() noexcept;
}  // namespace this_process

/// A running function child of this process.
struct child_info {
  int pid;
  std::string name;
  bool daemon;
};

/// The function children of this process that are still running (Python's active_children()).
std::vector<child_info> active_children();

/// The CPUs this process may run on (its affinity mask), like `len(os.sched_getaffinity(0))`.
unsigned cpu_count() noexcept;

}  // namespace herd
