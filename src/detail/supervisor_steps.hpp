// A supervisor's decisions (herd/supervisor.hpp) without a process or a timer: which child to
// start or stop next, in which order, when a restart waits for its backoff, and when the restart
// intensity is exceeded. The caller does what the actions say and reports back what happened.
#pragma once

#include <herd/supervision.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>
#include <vector>

namespace herd::detail {

class supervisor_steps {
 public:
  using time = std::chrono::nanoseconds;  // a steady clock's reading
  /// The timer of a group restart (one_for_all, rest_for_one), as a child index.
  static constexpr std::size_t group = std::numeric_limits<std::size_t>::max();

  enum class phase { idle, running, stopping, failing, stopped, failed };

  struct action {
    enum class kind {
      start,      // start `child`; report launched() or launch_failed()
      stop,       // stop `child` by its stop policy; report exited()
      arm_timer,  // call timer(child) after `delay` (child may be `group`)
      gave_up,    // every child has ended; `child` is the one that exceeded the intensity
      stopped,    // every child has ended after stop()
    };
    kind what;
    std::size_t child = 0;
    time delay{};
    friend bool operator==(const action&, const action&) = default;
  };
  using actions = std::vector<action>;

  struct settings {
    supervision_strategy strategy = supervision_strategy::one_for_one;
    restart_intensity intensity{};
    restart_backoff backoff{};
    std::vector<restart_policy> policies;  // one per child, in start order
    std::uint64_t seed = 0;                // of the backoff's jitter
  };

  explicit supervisor_steps(settings s);

  /// Starts the children in order.
  void begin(time now, actions& out);
  /// Child `i` runs. Unless it `waits_ready`, it counts as started and the next one starts.
  void launched(std::size_t i, time now, bool waits_ready, actions& out);
  /// Child `i` said it is ready.
  void ready(std::size_t i, time now, actions& out);
  /// Child `i` could not be started: the supervisor gives up at once during the first start,
  /// later it counts as an abnormal end.
  void launch_failed(std::size_t i, time now, actions& out);
  /// Child `i` ended (on its own, or after a stop action); `abnormal`: not a zero exit.
  void exited(std::size_t i, bool abnormal, time now, actions& out);
  /// Child `i` missed its heartbeat (or its readiness deadline): stopped, then an abnormal end.
  void hung(std::size_t i, time now, actions& out);
  /// A timer armed by an action has expired.
  void timer(std::size_t i, time now, actions& out);
  /// Stops every child, the last started first.
  void stop(time now, actions& out);

  phase current() const noexcept { return phase_; }
  child_state state(std::size_t i) const noexcept { return children_[i].state; }
  std::size_t restarts(std::size_t i) const noexcept { return children_[i].restarts; }
  std::size_t size() const noexcept { return children_.size(); }
  /// The child that exceeded the intensity (after gave_up).
  std::size_t failed_child() const noexcept { return failed_; }
  /// Whether a stop of child `i` was asked for because it missed its heartbeat.
  bool hanging(std::size_t i) const noexcept { return children_[i].hung; }

 private:
  static constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
  enum class group_stage { stopping, waiting };

  struct child {
    restart_policy policy;
    child_state state = child_state::idle;
    std::size_t restarts = 0;
    unsigned attempts = 0;  // restarts in a row, for the backoff
    time started_at{};
    bool hung = false;
    bool launched_once = false;
  };

  bool live(std::size_t i) const noexcept;
  void launch(std::size_t i, actions& out);
  void mark_started(std::size_t i, actions& out);
  void advance(actions& out);
  void failure(std::size_t i, bool abnormal, time now, actions& out);
  void group_restart(std::size_t from, time delay, actions& out);
  void group_progress(actions& out);
  void fail(std::size_t i, actions& out);
  void stop_next(actions& out);
  bool intensity_allows(time now);
  time next_delay(child& c);

  settings settings_;
  std::vector<child> children_;
  phase phase_ = phase::idle;
  bool first_start_ = true;
  std::size_t sequence_ = none;  // the ordered start waits for this child
  std::size_t group_from_ = none;
  group_stage group_stage_ = group_stage::stopping;
  time group_delay_{};
  std::deque<time> recent_restarts_;
  std::size_t failed_ = none;
  std::mt19937_64 random_;
};

}  // namespace herd::detail
