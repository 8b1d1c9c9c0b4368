// herd::supervisor: the decisions are supervisor_steps' (src/detail/supervisor_steps.*); this
// file does what they say on a strand — starts and stops children, arms the backoff timers,
// watches heartbeats — and tells them what happened.
#include <herd/child.hpp>
#include <herd/supervisor.hpp>

#include "detail/fork_child.hpp"
#include "detail/liveness.hpp"
#include "detail/post_completion.hpp"
#include "detail/supervisor_steps.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <list>
#include <mutex>
#include <set>
#include <utility>

namespace herd {
namespace detail {
namespace {

using steps_action = supervisor_steps::action::kind;

supervisor_steps::time steady_now() {
  return std::chrono::duration_cast<supervisor_steps::time>(std::chrono::steady_clock::now().time_since_epoch());
}

std::chrono::milliseconds as_ms(supervisor_steps::time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t);
}

// What() of a stored exception (herd's note for one that is not a std::exception).
std::string describe_exception(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (...) {
    return describe_current_exception().message;
  }
}

// A function child's handle or a program's: alike but for the name of the wait.
template <typename Handle>
struct supervised_handle final : supervised {
  explicit supervised_handle(Handle&& h) : handle(std::move(h)) {}
  int pid() const noexcept override { return handle.pid(); }
  void wait(asio::any_completion_handler<void(error_code, exit_status)> handler) override {
    if constexpr (std::is_same_v<Handle, child>)
      handle.async_wait(std::move(handler));
    else
      handle.async_join(std::move(handler));
  }
  void stop() override { handle.terminate(); }
  void kill() noexcept override { handle.kill(); }
  Handle handle;
};

// A nested supervisor ends when it gives up (exit code 1, its error as the reason) or when it
// was stopped (exit code 0).
struct supervised_supervisor final : supervised {
  explicit supervised_supervisor(herd::supervisor&& s) : nested(std::move(s)) {}
  int pid() const noexcept override { return 0; }
  void wait(asio::any_completion_handler<void(error_code, exit_status)> handler) override {
    // Completed where the parent supervisor works (its strand), not in the nested one's.
    const auto ex = asio::get_associated_executor(handler, nested.get_executor());
    nested.async_run(asio::bind_executor(ex, [this, h = std::move(handler)](std::exception_ptr error) mutable {
      if (error) why = describe_exception(error);
      std::move(h)(error_code(), exit_status::exited(error ? 1 : 0));
    }));
  }
  void stop() override { nested.request_stop(); }
  void kill() noexcept override { nested.kill(); }
  std::string describe(const exit_status& status) const override {
    return status.success() ? "stopped" : "gave up: " + why;
  }
  herd::supervisor nested;
  std::string why;
};

void check_specs(const std::vector<child_spec>& children, const supervisor_options& options) {
  const auto refuse = [&](const std::string& what) {
    throw_error(make_error_code(errc::invalid_argument), "supervisor '" + options.name + "': " + what);
  };
  std::set<std::string> ids;
  for (const child_spec& spec : children) {
    if (spec.id().empty()) refuse("a child spec has an empty id");
    if (!ids.insert(spec.id()).second) refuse("two children have the id '" + spec.id() + "'");
    if (spec.heartbeat() < std::chrono::milliseconds(0))
      refuse("child '" + spec.id() + "': heartbeat timeout is " + std::to_string(spec.heartbeat().count()) + " ms");
  }
  if (options.intensity.period <= std::chrono::milliseconds(0))
    refuse("intensity period is " + std::to_string(options.intensity.period.count()) + " ms (must be positive)");
  const restart_backoff& b = options.backoff;
  if (b.initial < std::chrono::milliseconds(0) || b.maximum < b.initial)
    refuse("backoff from " + std::to_string(b.initial.count()) + " ms to " + std::to_string(b.maximum.count()) +
           " ms (must be 0 <= initial <= maximum)");
  if (!(b.jitter >= 0.0 && b.jitter <= 1.0)) refuse("backoff jitter is " + std::to_string(b.jitter) + " (0 to 1)");
}

supervisor_steps::settings steps_settings(const std::vector<child_spec>& children, const supervisor_options& options) {
  supervisor_steps::settings s{options.strategy, options.intensity, options.backoff, {},
                               static_cast<std::uint64_t>(steady_now().count())};
  for (const child_spec& spec : children) s.policies.push_back(spec.restart());
  return s;
}

bool watches_liveness(const std::vector<child_spec>& children) {
  return std::any_of(children.begin(), children.end(), [](const child_spec& c) {
    return c.heartbeat() > std::chrono::milliseconds(0) || c.waits_ready();
  });
}

}  // namespace

struct supervisor_core : std::enable_shared_from_this<supervisor_core> {
  struct record {
    explicit record(const asio::any_io_executor& ex) : backoff(ex) {}
    std::unique_ptr<supervised> running;
    int pid = 0;
    std::uint64_t run = 0;  // which run of the child a completion is for
    std::optional<exit_status> last_exit;
    std::string last_reason;
    std::exception_ptr start_error;
    supervisor_steps::time started{};
    asio::steady_timer backoff;
  };

  supervisor_core(const asio::any_io_executor& ex, std::vector<child_spec> c, supervisor_options o)
      : strand(asio::make_strand(ex)),
        options(std::move(o)),
        children(std::move(c)),
        steps(steps_settings(children, options)),
        group_timer(strand),
        watch_timer(strand) {
    records.reserve(children.size());
    for (std::size_t i = 0; i < children.size(); ++i) records.emplace_back(strand);
    if (watches_liveness(children)) liveness = liveness_page(children.size());
    refresh_snapshot();
  }

  asio::strand<asio::any_io_executor> strand;
  supervisor_options options;
  std::vector<child_spec> children;
  supervisor_steps steps;
  std::vector<record> records;
  asio::steady_timer group_timer;
  asio::steady_timer watch_timer;
  bool watching = false;
  liveness_page liveness;
  bool ran = false;
  bool over = false;
  std::exception_ptr outcome;
  std::optional<asio::any_completion_handler<void(std::exception_ptr)>> run_handler;
  std::list<asio::any_completion_handler<void(error_code)>> stop_waiters;
  mutable std::mutex snapshot_mutex;
  std::vector<supervised_child_info> snapshot;

  // ----- entry points, on the strand -----

  void run(asio::any_completion_handler<void(std::exception_ptr)> handler) {
    if (ran || over) {
      std::exception_ptr error = over ? outcome
                                      : std::make_exception_ptr(boost::system::system_error(
                                            make_error_code(errc::invalid_argument),
                                            "herd: supervisor '" + options.name + "': async_run called twice"));
      return post_completion(strand, std::move(handler), error);
    }
    ran = true;
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected())
      slot.assign([weak = weak_from_this()](asio::cancellation_type type) {
        if (type == asio::cancellation_type::none) return;
        if (auto self = weak.lock()) asio::post(self->strand, [self] { self->stop(); });
      });
    run_handler.emplace(std::move(handler));
    supervisor_steps::actions out;
    steps.begin(steady_now(), out);
    carry_out(out);
  }

  void stop() {
    supervisor_steps::actions out;
    steps.stop(steady_now(), out);
    carry_out(out);
  }

  void kill_all() {
    stop();
    for (record& r : records)
      if (r.running) r.running->kill();
  }

  // ----- what the steps say -----

  void carry_out(supervisor_steps::actions& out) {
    bool launched = false;
    for (std::size_t k = 0; k < out.size(); ++k) {
      const supervisor_steps::action a = out[k];
      switch (a.what) {
        case steps_action::start:
          // One start per turn of the loop: a thousand children do not hold it for a thousand
          // forks at once.
          if (std::exchange(launched, true))
            asio::post(strand, [self = shared_from_this(), i = a.child] { self->launch_later(i); });
          else
            launch_if_wanted(a.child, out);
          break;
        case steps_action::stop:
          if (records[a.child].running) records[a.child].running->stop();
          break;
        case steps_action::arm_timer:
          arm(a.child, a.delay);
          break;
        case steps_action::gave_up:
          gave_up(a.child);
          break;
        case steps_action::stopped:
          emit(event(supervisor_event::kind::stopped));
          finish(nullptr);
          break;
      }
    }
    refresh_snapshot();
    watch();
  }

  void launch(std::size_t i, supervisor_steps::actions& out) {
    record& r = records[i];
    const child_spec& spec = children[i];
    if (liveness) liveness.reset(i);
    launch_settings settings{spec.id(), spec.stop(), liveness ? liveness.variable(i) : std::string()};
    const std::uint64_t run = ++r.run;
    try {
      r.running = spec.factory_(strand, settings);
    } catch (...) {
      r.start_error = std::current_exception();
      r.last_reason = describe_exception(r.start_error);
      emit(event(supervisor_event::kind::exited, i, {}, "could not start: " + r.last_reason));
      steps.launch_failed(i, steady_now(), out);
      return;
    }
    r.start_error = nullptr;
    r.pid = r.running->pid();
    r.started = steady_now();
    r.running->wait(asio::bind_executor(strand, [self = shared_from_this(), i, run](error_code, exit_status status) {
      self->ended(i, run, status);
    }));
    steps.launched(i, r.started, spec.waits_ready(), out);
    if (!spec.waits_ready()) emit_started(i);
  }

  // A start put off by carry_out.
  void launch_later(std::size_t i) {
    supervisor_steps::actions out;
    launch_if_wanted(i, out);
    carry_out(out);
  }

  // The steps may have asked to stop the child since they asked to start it: it never ran.
  void launch_if_wanted(std::size_t i, supervisor_steps::actions& out) {
    if (records[i].running) return;
    if (steps.state(i) == child_state::starting)
      launch(i, out);
    else if (steps.state(i) == child_state::stopping)
      steps.exited(i, false, steady_now(), out);
  }

  void ended(std::size_t i, std::uint64_t run, const exit_status& status) {
    record& r = records[i];
    if (run != r.run || !r.running) return;
    r.last_exit = status;
    r.last_reason = r.running->describe(status);
    const int pid = std::exchange(r.pid, 0);
    r.running.reset();
    auto exited = event(supervisor_event::kind::exited, i, status, r.last_reason);
    exited.pid = pid;
    emit(std::move(exited));
    const std::size_t restarts = steps.restarts(i);
    supervisor_steps::actions out;
    steps.exited(i, !status.success(), steady_now(), out);
    if (steps.restarts(i) != restarts) {
      std::chrono::milliseconds delay{0};
      for (const auto& a : out)
        if (a.what == steps_action::arm_timer && (a.child == i || a.child == supervisor_steps::group))
          delay = as_ms(a.delay);
      auto restarting = event(supervisor_event::kind::restarting, i, status, r.last_reason);
      restarting.delay = delay;
      emit(std::move(restarting));
    }
    carry_out(out);
  }

  void arm(std::size_t i, supervisor_steps::time delay) {
    asio::steady_timer& timer = i == supervisor_steps::group ? group_timer : records[i].backoff;
    timer.expires_after(delay);
    timer.async_wait([self = shared_from_this(), i](error_code ec) {
      if (ec) return;
      supervisor_steps::actions out;
      self->steps.timer(i, steady_now(), out);
      self->carry_out(out);
    });
  }

  void gave_up(std::size_t i) {
    const record& r = records[i];
    const child_spec& spec = children[i];
    std::string message = "herd: supervisor '" + options.name + "': ";
    error_code code = make_error_code(errc::restart_intensity);
    if (r.start_error && !r.last_exit) {  // it never ran: the first start failed
      code = code_of(r.start_error);
      message += "child '" + spec.id() + "' could not be started: " + r.last_reason;
    } else {
      message += "child '" + spec.id() + "' ended more than " + std::to_string(options.intensity.max_restarts) +
                 " times in " + std::to_string(options.intensity.period.count()) + " ms (last: " + r.last_reason +
                 "); every child was stopped";
    }
    emit(event(supervisor_event::kind::gave_up, i, r.last_exit, message));
    finish(std::make_exception_ptr(supervisor_error(code, message, options.name, spec.id(), r.last_exit)));
  }

  void finish(std::exception_ptr error) {
    over = true;
    outcome = error;
    group_timer.cancel();
    watch_timer.cancel();
    for (record& r : records) r.backoff.cancel();
    if (run_handler) {
      asio::get_associated_cancellation_slot(*run_handler).clear();
      post_completion(strand, std::move(*run_handler), error);
      run_handler.reset();
    }
    for (auto& waiter : stop_waiters) post_completion(strand, std::move(waiter), error_code());
    stop_waiters.clear();
  }

  // ----- heartbeats and readiness -----

  // One timer for every watched child, as often as the tightest heartbeat needs (a quarter of
  // it), or every 2 ms while a child is to say it is ready.
  void watch() {
    if (!liveness || watching || steps.current() != supervisor_steps::phase::running) return;
    std::chrono::milliseconds every{0};
    for (std::size_t i = 0; i < children.size(); ++i) {
      const child_state s = steps.state(i);
      std::chrono::milliseconds need{0};
      if (s == child_state::starting && children[i].waits_ready())
        need = std::chrono::milliseconds(2);
      else if (s == child_state::running && children[i].heartbeat().count() > 0)
        need = std::max(std::chrono::milliseconds(1), children[i].heartbeat() / 4);
      if (need.count() > 0 && (every.count() == 0 || need < every)) every = need;
    }
    if (every.count() == 0) return;
    watching = true;
    watch_timer.expires_after(every);
    watch_timer.async_wait([self = shared_from_this()](error_code ec) {
      self->watching = false;
      if (!ec) self->look_at_liveness();
    });
  }

  void look_at_liveness() {
    const auto now = steady_now();
    supervisor_steps::actions out;
    for (std::size_t i = 0; i < children.size(); ++i) {
      const child_spec& spec = children[i];
      const record& r = records[i];
      const liveness_slot& slot = liveness.slot(i);
      const child_state s = steps.state(i);
      if (s == child_state::starting && spec.waits_ready()) {
        if (slot.ready.load(std::memory_order_acquire) != 0) {
          steps.ready(i, now, out);
          emit_started(i);
        } else if (now - r.started > spec.ready_timeout()) {
          missed(i, "not ready within " + std::to_string(spec.ready_timeout().count()) + " ms", out);
        }
      } else if (s == child_state::running && spec.heartbeat().count() > 0) {
        const supervisor_steps::time beat(slot.beat_ns.load(std::memory_order_acquire));
        const auto last = std::max(beat, r.started);
        if (now - last > spec.heartbeat())
          missed(i, "no heartbeat for " + std::to_string(as_ms(now - last).count()) + " ms (allowed " +
                        std::to_string(spec.heartbeat().count()) + " ms)",
                 out);
      }
    }
    carry_out(out);
  }

  void missed(std::size_t i, std::string why, supervisor_steps::actions& out) {
    emit(event(supervisor_event::kind::heartbeat_missed, i, {}, std::move(why)));
    steps.hung(i, steady_now(), out);
  }

  // ----- reporting -----

  // An event about child `i` (none: `npos`), with its pid and restarts as they are now.
  supervisor_event event(supervisor_event::kind what, std::size_t i = std::string::npos,
                         std::optional<exit_status> status = {}, std::string reason = {}) const {
    supervisor_event e;
    e.what = what;
    e.supervisor = options.name;
    if (i != std::string::npos) {
      e.child = children[i].id();
      e.pid = records[i].pid;
      e.restarts = steps.restarts(i);
    }
    e.status = std::move(status);
    e.reason = std::move(reason);
    return e;
  }

  void emit(supervisor_event event) {
    if (!options.on_event) return;
    refresh_snapshot();  // an observer may ask which_children()
    try {
      options.on_event(event);
    } catch (...) {
      // An observer's failure is not the supervisor's: it goes on.
    }
  }

  void emit_started(std::size_t i) {
    emit(event(supervisor_event::kind::started, i));
  }

  void refresh_snapshot() {
    std::vector<supervised_child_info> now;
    now.reserve(children.size());
    for (std::size_t i = 0; i < children.size(); ++i)
      now.push_back({children[i].id(), steps.state(i), records[i].pid, steps.restarts(i), records[i].last_exit});
    std::lock_guard lock(snapshot_mutex);
    snapshot.swap(now);
  }

  static error_code code_of(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      return e.code();
    } catch (...) {
      return make_error_code(errc::spawn_failed);
    }
  }
};

std::unique_ptr<supervised> supervise(process_base&& process) {
  return std::make_unique<supervised_handle<process_base>>(std::move(process));
}

process_options supervised_options(process_options options, const launch_settings& settings) {
  if (options.name.empty()) options.name = settings.id;
  if (settings.stop) options.stop = *settings.stop;
  if (!settings.liveness.empty()) options.env.emplace_back(liveness_variable, settings.liveness);
  return options;
}

void supervisor_async_run(const std::shared_ptr<supervisor_core>& core, const asio::any_io_executor& ex,
                          asio::any_completion_handler<void(std::exception_ptr)> handler) {
  if (!core)
    return post_completion(ex, std::move(handler),
                           std::make_exception_ptr(boost::system::system_error(
                               make_error_code(errc::not_running), "herd: supervisor::async_run")));
  asio::dispatch(core->strand, [core, h = std::move(handler)]() mutable { core->run(std::move(h)); });
}

void supervisor_async_stop(const std::shared_ptr<supervisor_core>& core, const asio::any_io_executor& ex,
                           asio::any_completion_handler<void(error_code)> handler) {
  if (!core) return post_completion(ex, std::move(handler), make_error_code(errc::not_running));
  asio::post(core->strand, [core, h = std::move(handler)]() mutable {
    if (core->over) return post_completion(core->strand, std::move(h), error_code());
    core->stop_waiters.push_back(std::move(h));
    core->stop();
  });
}

}  // namespace detail

// ----- child_spec -----

child_spec::child_spec(std::string id, detail::child_factory factory) : id_(std::move(id)), factory_(std::move(factory)) {}

child_spec child_spec::program(std::string id, command cmd) {
  return child_spec(std::move(id), [cmd = std::move(cmd)](const asio::any_io_executor& ex,
                                                          const detail::launch_settings& settings) {
    command c = cmd;
    if (settings.stop) c.stop(*settings.stop);
    if (!settings.liveness.empty()) c.env(liveness_variable, settings.liveness);
    return std::unique_ptr<detail::supervised>(std::make_unique<detail::supervised_handle<child>>(child(ex, c)));
  });
}

child_spec child_spec::supervisor(std::string id, std::vector<child_spec> children, supervisor_options options) {
  if (options.name == supervisor_options{}.name) options.name = id;
  detail::check_specs(children, options);
  return child_spec(std::move(id), [children = std::move(children), options = std::move(options)](
                                       const asio::any_io_executor& ex, const detail::launch_settings&) {
    return std::unique_ptr<detail::supervised>(
        std::make_unique<detail::supervised_supervisor>(herd::supervisor(ex, children, options)));
  });
}

child_spec child_spec::supervisor(std::string id, std::vector<child_spec> children) {
  return supervisor(std::move(id), std::move(children), supervisor_options{});
}

child_spec& child_spec::restart(restart_policy policy) & {
  restart_ = policy;
  return *this;
}
child_spec& child_spec::stop(stop_policy policy) & {
  stop_ = policy;
  return *this;
}
child_spec& child_spec::heartbeat(std::chrono::milliseconds timeout) & {
  heartbeat_ = timeout;
  return *this;
}
child_spec& child_spec::await_ready(std::chrono::milliseconds timeout) & {
  await_ready_ = true;
  ready_timeout_ = timeout;
  return *this;
}

// ----- supervisor -----

supervisor_error::supervisor_error(error_code code, const std::string& message, std::string supervisor,
                                   std::string child, std::optional<exit_status> last_exit)
    : boost::system::system_error(code, message),
      supervisor_(std::move(supervisor)),
      child_(std::move(child)),
      last_exit_(std::move(last_exit)) {}

supervisor::supervisor(const executor_type& ex, std::vector<child_spec> children, supervisor_options options)
    : executor_(ex) {
  detail::check_specs(children, options);
  core_ = std::make_shared<detail::supervisor_core>(ex, std::move(children), std::move(options));
}

supervisor::supervisor(supervisor&& other) noexcept
    : core_(std::move(other.core_)), executor_(other.executor_) {}

supervisor& supervisor::operator=(supervisor&& other) noexcept {
  if (this != &other) {
    if (core_) request_stop();
    core_ = std::move(other.core_);
    executor_ = other.executor_;
  }
  return *this;
}

supervisor::~supervisor() {
  if (core_) request_stop();
}

const std::string& supervisor::name() const noexcept {
  static const std::string empty;
  return core_ ? core_->options.name : empty;
}

void supervisor::request_stop() {
  if (!core_) detail::throw_error(make_error_code(errc::not_running), "supervisor::request_stop");
  // Posted, never run inline: an observer may ask from within an event.
  asio::post(core_->strand, [core = core_] { core->stop(); });
}

void supervisor::kill() noexcept {
  if (!core_) return;
  asio::post(core_->strand, [core = core_] { core->kill_all(); });
}

std::vector<supervised_child_info> supervisor::which_children() const {
  if (!core_) detail::throw_error(make_error_code(errc::not_running), "supervisor::which_children");
  std::lock_guard lock(core_->snapshot_mutex);
  return core_->snapshot;
}

const char* to_string(child_state state) noexcept {
  switch (state) {
    case child_state::idle: return "idle";
    case child_state::starting: return "starting";
    case child_state::running: return "running";
    case child_state::stopping: return "stopping";
    case child_state::waiting: return "waiting";
    case child_state::done: return "done";
  }
  return "?";
}

std::string to_string(const supervisor_event& e) {
  const std::string who = e.child + (e.pid != 0 ? " (pid " + std::to_string(e.pid) + ")" : std::string());
  switch (e.what) {
    case supervisor_event::kind::started:
      return "started " + who;
    case supervisor_event::kind::exited:
      return "exited " + who + ": " + e.reason;
    case supervisor_event::kind::restarting:
      return "restarting " + e.child + " (restart " + std::to_string(e.restarts) + ") in " +
             std::to_string(e.delay.count()) + " ms";
    case supervisor_event::kind::heartbeat_missed:
      return "heartbeat missed " + who + ": " + e.reason;
    case supervisor_event::kind::gave_up:
      return "gave up on " + e.child + ": " + e.reason;
    case supervisor_event::kind::stopped:
      return "stopped " + e.supervisor;
  }
  return "?";
}

}  // namespace herd
