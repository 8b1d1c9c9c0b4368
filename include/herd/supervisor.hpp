/// @file herd/supervisor.hpp
/// Long-lived children kept alive: Erlang/OTP's supervisors for processes on Asio.
///
/// A supervisor starts its children in order — function children (as `herd::start` takes them),
/// programs (`herd::command`) or other supervisors — and restarts the ones that end by their
/// restart policy and its strategy, waiting a backoff between attempts, within a restart
/// intensity; beyond it, it stops every child (the last started first) and fails naming the child
/// that kept ending. A child may send heartbeats (`herd::this_process::heartbeat()`): one silent
/// for longer than its spec allows is stopped and restarted.
///
///     herd::supervisor sup(ex, {
///         herd::child_spec::function("cache", run_cache).heartbeat(2s),
///         herd::child_spec::program("web", herd::command("nginx", {"-g", "daemon off;"})),
///     });
///     co_await sup.async_run();  // until async_stop(), or throws supervisor_error
#pragma once

#include <herd/command.hpp>
#include <herd/config.hpp>
#include <herd/detail/initiate_as_tuple.hpp>
#include <herd/error.hpp>
#include <herd/exit_status.hpp>
#include <herd/process.hpp>
#include <herd/stop_policy.hpp>
#include <herd/supervision.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace herd {

class supervisor;
struct supervisor_options;
class child_spec;

namespace detail {
struct supervisor_core;

// A running child as a supervisor sees it, whatever it is (src/supervisor.cpp).
struct supervised {
  virtual ~supervised() = default;
  virtual int pid() const noexcept = 0;
  /// Completes once when the child has ended (never cancelled by the supervisor).
  virtual void wait(asio::any_completion_handler<void(error_code, exit_status)> handler) = 0;
  /// Starts its stop policy; `wait` reports the end.
  virtual void stop() = 0;
  /// Ends it at once (a forced stop).
  virtual void kill() noexcept = 0;
  /// How its run ended, in words, for events and errors.
  virtual std::string describe(const exit_status& status) const { return status.to_string(); }
};

// What a child spec's start needs from its supervisor.
struct launch_settings {
  std::string id;
  std::optional<stop_policy> stop;
  std::string liveness;  // the value of the environment variable that leads heartbeat() to its slot
};
using child_factory =
    std::function<std::unique_ptr<supervised>(const asio::any_io_executor&, const launch_settings&)>;

std::unique_ptr<supervised> supervise(process_base&& process);
process_options supervised_options(process_options options, const launch_settings& settings);
}  // namespace detail

/// The name of the environment variable through which a supervised child finds its heartbeat slot.
inline constexpr const char* liveness_variable = "HERD_LIVENESS";

/// How to start one supervised child, and how to treat it.
class child_spec {
 public:
  /// A function child: `f(args...)` as `herd::start(ex, options, f, args...)` runs it, started
  /// again with the same arguments (copies kept by the spec). The child's name is the id unless
  /// `options.name` says otherwise.
  template <typename F, typename... Args>
    requires detail::startable<std::decay_t<F>, std::decay_t<Args>...>
  static child_spec function(std::string id, process_options options, F f, Args... args) {
    return child_spec(std::move(id),
                      [options = std::move(options), f = std::move(f), ... args = std::move(args)](
                          const asio::any_io_executor& ex,
                          const detail::launch_settings& settings) -> std::unique_ptr<detail::supervised> {
                        return detail::supervise(herd::start(ex, detail::supervised_options(options, settings), f, args...));
                      });
  }
  template <typename F, typename... Args>
    requires detail::startable<std::decay_t<F>, std::decay_t<Args>...>
  static child_spec function(std::string id, F f, Args... args) {
    return function(std::move(id), process_options{}, std::move(f), std::move(args)...);
  }
  /// A program.
  static child_spec program(std::string id, command cmd);
  /// A supervisor of its own children, in this process: it counts as ended when it gives up,
  /// so a failure too frequent for it is handled by its parent's strategy (OTP's escalation).
  static child_spec supervisor(std::string id, std::vector<child_spec> children, supervisor_options options);
  static child_spec supervisor(std::string id, std::vector<child_spec> children);

  /// When it is started again (default: permanent).
  child_spec& restart(restart_policy policy) &;
  child_spec&& restart(restart_policy policy) && { return std::move(restart(policy)); }
  /// How it is stopped (default: what its process options or command say).
  child_spec& stop(stop_policy policy) &;
  child_spec&& stop(stop_policy policy) && { return std::move(stop(policy)); }
  /// It must call `herd::this_process::heartbeat()` at least once every `timeout` (counted from
  /// its start), or it is treated as hung: stopped by its stop policy, then restarted.
  child_spec& heartbeat(std::chrono::milliseconds timeout) &;
  child_spec&& heartbeat(std::chrono::milliseconds timeout) && { return std::move(heartbeat(timeout)); }
  /// It counts as started (and the next child starts) only once it calls
  /// `herd::this_process::notify_ready()`; not ready within `timeout`, it is treated as hung.
  child_spec& await_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10)) &;
  child_spec&& await_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10)) && {
    return std::move(await_ready(timeout));
  }

  const std::string& id() const noexcept { return id_; }
  restart_policy restart() const noexcept { return restart_; }
  const std::optional<stop_policy>& stop() const noexcept { return stop_; }
  std::chrono::milliseconds heartbeat() const noexcept { return heartbeat_; }
  bool waits_ready() const noexcept { return await_ready_; }
  std::chrono::milliseconds ready_timeout() const noexcept { return ready_timeout_; }

 private:
  friend struct detail::supervisor_core;
  child_spec(std::string id, detail::child_factory factory);

  std::string id_;
  restart_policy restart_ = restart_policy::permanent;
  std::optional<stop_policy> stop_;
  std::chrono::milliseconds heartbeat_{0};
  bool await_ready_ = false;
  std::chrono::milliseconds ready_timeout_{std::chrono::seconds(10)};
  detail::child_factory factory_;
};

struct supervisor_options {
  /// For events, errors and which_children(); default "supervisor".
  std::string name = "supervisor";
  supervision_strategy strategy = supervision_strategy::one_for_one;
  restart_intensity intensity{};
  restart_backoff backoff{};
  /// Called on the supervisor's executor for everything it does and sees.
  std::function<void(const supervisor_event&)> on_event{};
};

/// Why a supervisor gave up: `code()` is `errc::restart_intensity`; what() names the supervisor,
/// the child that kept ending and how its last run ended.
class supervisor_error : public boost::system::system_error {
 public:
  supervisor_error(error_code code, const std::string& message, std::string supervisor, std::string child,
                   std::optional<exit_status> last_exit);
  const std::string& supervisor() const noexcept { return supervisor_; }
  /// The id of the child that exceeded the intensity.
  const std::string& child() const noexcept { return child_; }
  /// How its last run ended (empty if it could not be started).
  const std::optional<exit_status>& last_exit() const noexcept { return last_exit_; }

 private:
  std::string supervisor_;
  std::string child_;
  std::optional<exit_status> last_exit_;
};

namespace detail {
void supervisor_async_run(const std::shared_ptr<supervisor_core>& core, const asio::any_io_executor& ex,
                          asio::any_completion_handler<void(std::exception_ptr)> handler);
void supervisor_async_stop(const std::shared_ptr<supervisor_core>& core, const asio::any_io_executor& ex,
                           asio::any_completion_handler<void(error_code)> handler);
}  // namespace detail

/// Starts its children when run, keeps them alive, stops them in reverse order.
///
/// Destroying a supervisor whose children run stops them (stop policies, the last started
/// first) in the background on its executor; no child outlives it unreaped.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe, except `which_children()`, `request_stop()`
///   and `kill()`, which may be called from any thread. Its work runs in a strand of its executor,
///   so a multi-threaded io_context is fine.
class supervisor {
 public:
  using executor_type = asio::any_io_executor;

  /// Checks the specs (ids non-empty and distinct, intensity and backoff sane): throws
  /// `errc::invalid_argument` naming the value. Nothing starts before async_run().
  supervisor(const executor_type& ex, std::vector<child_spec> children, supervisor_options options = {});
  supervisor(supervisor&&) noexcept;
  supervisor& operator=(supervisor&&) noexcept;
  ~supervisor();

  executor_type get_executor() const noexcept { return executor_; }
  /// False once moved from.
  bool valid() const noexcept { return core_ != nullptr; }
  /// Its name (empty once moved from).
  const std::string& name() const noexcept;

  /// Starts the children in order, keeps them by their specs, and completes when the supervisor
  /// is over: with nothing after a stop, with a `supervisor_error` (`errc::restart_intensity`)
  /// when it gave up, with `errc::not_running` for a moved-from supervisor, with
  /// `errc::invalid_argument` when run twice, or with the start's error (the program, the
  /// child's id) when a child could not be started the first time.
  /// @par Completion signature `void(std::exception_ptr)`.
  /// @par Cancellation terminal: stops the supervisor (as async_stop) and completes when it is over.
  template <asio::completion_token_for<void(std::exception_ptr)> Token>
  auto async_run(Token&& token) {
    return asio::async_initiate<Token, void(std::exception_ptr)>(
        [this](auto handler) { detail::supervisor_async_run(core_, executor_, std::move(handler)); }, token);
  }
  /// The same, awaited: throws what the other form delivers.
  asio::awaitable<void> async_run() {
    auto [error] = co_await detail::initiate_as_tuple<void(std::exception_ptr)>(
        [this](auto handler) { detail::supervisor_async_run(core_, executor_, std::move(handler)); });
    if (error) std::rethrow_exception(error);
  }

  /// Stops every child by its stop policy, the last started first, and completes when all have
  /// ended (at once if it is not running). `errc::not_running` for a moved-from supervisor.
  /// @par Completion signature `void(error_code)`.
  /// @par Cancellation none: it completes when the stop is over (use request_stop() not to wait).
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_stop(Token&& token = {}) {
    // The initiation holds no reference count: g++ 12 destroys the temporary of a discarded
    // `co_await sup.async_stop();` twice.
    return asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) { detail::supervisor_async_stop(core_, executor_, std::move(handler)); }, token);
  }
  /// Begins the stop and returns at once.
  void request_stop();
  /// SIGKILLs every child now (their process groups) and stops restarting: a forced stop.
  void kill() noexcept;

  /// Each child's state, pid, restarts and last exit, in start order.
  std::vector<supervised_child_info> which_children() const;

 private:
  std::shared_ptr<detail::supervisor_core> core_;
  executor_type executor_;
};

/// The calling process's side of supervision.
namespace this_process {
/// Tells the supervisor this child is alive. Cheap (a clock read and a store in shared memory):
/// call it as often as is convenient. False when the process is not a supervised child whose
/// spec watches heartbeats (then it does nothing).
bool heartbeat() noexcept;
/// Tells the supervisor this child is ready (a spec with await_ready()); counts as a heartbeat.
bool notify_ready() noexcept;
}  // namespace this_process

}  // namespace herd
