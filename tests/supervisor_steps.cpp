// The supervisor's decisions alone (src/detail/supervisor_steps.*): no process, no timer.
#include "detail/supervisor_steps.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using herd::child_state;
using herd::restart_policy;
using herd::supervision_strategy;
using herd::detail::supervisor_steps;
using kind = supervisor_steps::action::kind;
using time_point = supervisor_steps::time;

namespace {

struct driver {
  supervisor_steps steps;
  supervisor_steps::actions out;
  time_point now{1s};

  explicit driver(supervisor_steps::settings s) : steps(std::move(s)) {}

  // What the last call asked for, as text ("start 0", "stop 2", "timer 1 200ms", "gave_up 1").
  std::string said() {
    std::string text;
    for (const auto& a : out) {
      if (!text.empty()) text += ", ";
      switch (a.what) {
        case kind::start: text += "start " + std::to_string(a.child); break;
        case kind::stop: text += "stop " + std::to_string(a.child); break;
        case kind::arm_timer:
          text += "timer " + (a.child == supervisor_steps::group ? std::string("group") : std::to_string(a.child)) +
                  " " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(a.delay).count()) + "ms";
          break;
        case kind::gave_up: text += "gave_up " + std::to_string(a.child); break;
        case kind::stopped: text += "stopped"; break;
      }
    }
    out.clear();
    return text;
  }
  std::string begin() { return steps.begin(now, out), said(); }
  std::string launched(std::size_t i, bool waits_ready = false) { return steps.launched(i, now, waits_ready, out), said(); }
  std::string ready(std::size_t i) { return steps.ready(i, now, out), said(); }
  std::string exited(std::size_t i, bool abnormal = true) { return steps.exited(i, abnormal, now, out), said(); }
  std::string hung(std::size_t i) { return steps.hung(i, now, out), said(); }
  std::string timer(std::size_t i) { return steps.timer(i, now, out), said(); }
  std::string failed_launch(std::size_t i) { return steps.launch_failed(i, now, out), said(); }
  std::string stop() { return steps.stop(now, out), said(); }

  // Starts every child (none waits to be ready).
  void start_all() {
    CHECK(begin() == "start 0");
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const std::string next = launched(i);
      CHECK(next == (i + 1 < steps.size() ? "start " + std::to_string(i + 1) : std::string()));
    }
  }
};

supervisor_steps::settings settings(supervision_strategy strategy, std::vector<restart_policy> policies,
                                    std::size_t max_restarts = 10) {
  supervisor_steps::settings s;
  s.strategy = strategy;
  s.policies = std::move(policies);
  s.intensity = {max_restarts, std::chrono::milliseconds(5s)};
  s.backoff = {100ms, 1s, 0.0, 5s};
  return s;
}

const std::vector<restart_policy> three(3, restart_policy::permanent);

}  // namespace

TEST_SUITE("supervisor steps") {
  TEST_CASE("children start in order, each once the one before runs") {
    driver d(settings(supervision_strategy::one_for_one, three));
    CHECK(d.begin() == "start 0");
    CHECK(d.steps.state(0) == child_state::starting);
    CHECK(d.steps.state(1) == child_state::idle);
    CHECK(d.launched(0) == "start 1");
    CHECK(d.launched(1) == "start 2");
    CHECK(d.launched(2) == "");
    for (std::size_t i = 0; i < 3; ++i) CHECK(d.steps.state(i) == child_state::running);
  }

  TEST_CASE("a child that must say it is ready holds the next one until it does") {
    driver d(settings(supervision_strategy::one_for_one, three));
    CHECK(d.begin() == "start 0");
    CHECK(d.launched(0, true) == "");
    CHECK(d.steps.state(0) == child_state::starting);
    CHECK(d.ready(0) == "start 1");
    CHECK(d.steps.state(0) == child_state::running);
    CHECK(d.ready(0) == "");  // once
  }

  TEST_CASE("one_for_one restarts the child that ended and no other") {
    driver d(settings(supervision_strategy::one_for_one, three));
    d.start_all();
    CHECK(d.exited(1) == "start 1");
    CHECK(d.steps.restarts(1) == 1);
    CHECK(d.steps.state(0) == child_state::running);
    CHECK(d.steps.state(2) == child_state::running);
  }

  TEST_CASE("one_for_all stops the others the last first, then starts all in order") {
    driver d(settings(supervision_strategy::one_for_all, three));
    d.start_all();
    CHECK(d.exited(1) == "stop 2");
    CHECK(d.exited(2, false) == "stop 0");
    CHECK(d.exited(0, false) == "start 0");
    CHECK(d.launched(0) == "start 1");
    CHECK(d.launched(1) == "start 2");
    CHECK(d.launched(2) == "");
    CHECK(d.steps.restarts(1) == 1);
    CHECK(d.steps.restarts(0) == 0);  // stopped by the strategy: not a restart of its own
  }

  TEST_CASE("rest_for_one restarts the child and those started after it") {
    driver d(settings(supervision_strategy::rest_for_one, std::vector<restart_policy>(4, restart_policy::permanent)));
    d.start_all();
    CHECK(d.exited(1) == "stop 3");
    CHECK(d.exited(3, false) == "stop 2");
    CHECK(d.exited(2, false) == "start 1");
    CHECK(d.steps.state(0) == child_state::running);
    CHECK(d.launched(1) == "start 2");
    CHECK(d.launched(2) == "start 3");
    CHECK(d.launched(3) == "");
  }

  TEST_CASE("a failure earlier in the order during a group restart widens it") {
    driver d(settings(supervision_strategy::rest_for_one, three));
    d.start_all();
    CHECK(d.exited(2) == "start 2");  // the last: nothing after it
    CHECK(d.launched(2) == "");
    CHECK(d.exited(1) == "stop 2");
    CHECK(d.exited(0) == "");  // child 2 is still being stopped
    CHECK(d.exited(2, false) == "start 0");  // from child 0 now
    CHECK(d.launched(0) == "start 1");
  }

  TEST_CASE("permanent restarts after a clean exit, transient only after an abnormal one, temporary never") {
    driver d(settings(supervision_strategy::one_for_one,
                      {restart_policy::permanent, restart_policy::transient, restart_policy::temporary}));
    d.start_all();
    CHECK(d.exited(0, false) == "start 0");
    CHECK(d.launched(0) == "");
    CHECK(d.exited(1, true) == "start 1");
    CHECK(d.launched(1) == "");
    CHECK(d.exited(1, false) == "");
    CHECK(d.steps.state(1) == child_state::done);
    CHECK(d.exited(2, true) == "");
    CHECK(d.steps.state(2) == child_state::done);
  }

  TEST_CASE("a temporary child stopped by a group restart is not started again, nor a finished transient one") {
    driver d(settings(supervision_strategy::one_for_all,
                      {restart_policy::permanent, restart_policy::transient, restart_policy::temporary}));
    d.start_all();
    CHECK(d.exited(1, false) == "");  // finished
    CHECK(d.exited(0) == "stop 2");
    CHECK(d.exited(2, false) == "start 0");
    CHECK(d.launched(0) == "");
    CHECK(d.steps.state(1) == child_state::done);
    CHECK(d.steps.state(2) == child_state::done);
  }

  TEST_CASE("intensity: R restarts within T are allowed, the R+1th gives up after stopping the others in reverse") {
    driver d(settings(supervision_strategy::one_for_one, three, 2));
    d.start_all();
    CHECK(d.exited(1) == "start 1");  // restart 1 at 1 s
    CHECK(d.launched(1) == "");
    d.now += 1s;
    CHECK(d.exited(1) == "timer 1 100ms");  // restart 2 at 2 s (its second in a row waits)
    d.now += 100ms;
    CHECK(d.timer(1) == "start 1");
    CHECK(d.launched(1) == "");
    d.now += 1s;
    CHECK(d.exited(1) == "stop 2");  // the third within 5 s: giving up
    CHECK(d.steps.current() == supervisor_steps::phase::failing);
    CHECK(d.exited(2, false) == "stop 0");
    CHECK(d.exited(0, false) == "gave_up 1");
    CHECK(d.steps.failed_child() == 1);
    CHECK(d.steps.current() == supervisor_steps::phase::failed);
  }

  TEST_CASE("intensity: restarts older than the period no longer count") {
    driver d(settings(supervision_strategy::one_for_one, three, 2));
    d.start_all();
    CHECK(d.exited(0) == "start 0");
    CHECK(d.launched(0) == "");
    d.now += 6s;  // ran long enough: no backoff either
    CHECK(d.exited(0) == "start 0");
    CHECK(d.launched(0) == "");
    d.now += 1s;
    CHECK(d.exited(0) == "timer 0 100ms");  // two within 5 s: allowed
    d.now += 5s + 1ms;
    CHECK(d.timer(0) == "start 0");
    CHECK(d.launched(0) == "");
    CHECK(d.exited(0) == "timer 0 200ms");  // allowed: those at 7 s and 8 s have left the window
  }

  TEST_CASE("intensity 0 gives up at the first end that asks for a restart") {
    driver d(settings(supervision_strategy::one_for_one, {restart_policy::transient}, 0));
    d.start_all();
    CHECK(d.exited(0) == "gave_up 0");
  }

  TEST_CASE("backoff: none the first time, then doubling to the cap, a long run starts it over") {
    driver d(settings(supervision_strategy::one_for_one, {restart_policy::permanent}, 100));
    d.start_all();
    const std::vector<std::string> expected{"start 0", "timer 0 100ms", "timer 0 200ms", "timer 0 400ms",
                                            "timer 0 800ms", "timer 0 1000ms", "timer 0 1000ms"};
    for (const std::string& next : expected) {
      const std::string said = d.exited(0);
      CHECK(said == next);
      if (said != "start 0") CHECK(d.timer(0) == "start 0");
      CHECK(d.launched(0) == "");
    }
    d.now += 5s;
    CHECK(d.exited(0) == "start 0");
  }

  TEST_CASE("backoff jitter spreads each wait within its fraction") {
    auto s = settings(supervision_strategy::one_for_one, {restart_policy::permanent}, 1000);
    s.backoff = {100ms, 100ms, 0.5, 5s};
    s.seed = 7;
    driver d(std::move(s));
    d.start_all();
    CHECK(d.exited(0) == "start 0");
    CHECK(d.launched(0) == "");
    std::set<std::int64_t> seen;
    for (int k = 0; k < 50; ++k) {
      d.steps.exited(0, true, d.now, d.out);
      REQUIRE(d.out.size() == 1);
      const auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(d.out[0].delay).count();
      CHECK(delay >= 50);
      CHECK(delay <= 150);
      seen.insert(delay);
      d.out.clear();
      CHECK(d.timer(0) == "start 0");
      CHECK(d.launched(0) == "");
    }
    CHECK(seen.size() > 10);  // spread, not one value
  }

  TEST_CASE("a hung child is stopped, then restarted as an abnormal end, even a transient one") {
    driver d(settings(supervision_strategy::one_for_one, {restart_policy::transient, restart_policy::permanent}));
    d.start_all();
    CHECK(d.hung(0) == "stop 0");
    CHECK(d.steps.hanging(0));
    CHECK(d.hung(0) == "");  // already being stopped
    CHECK(d.exited(0, false) == "start 0");  // it ended cleanly when told: still a hang
    CHECK(d.steps.restarts(0) == 1);
  }

  TEST_CASE("a child not ready in time is handled as hung") {
    driver d(settings(supervision_strategy::one_for_one, three));
    CHECK(d.begin() == "start 0");
    CHECK(d.launched(0, true) == "");
    CHECK(d.hung(0) == "stop 0");
    CHECK(d.exited(0) == "start 0");
    CHECK(d.launched(0, true) == "");
    CHECK(d.ready(0) == "start 1");
  }

  TEST_CASE("stop: the children stop one at a time, the last started first, waiting restarts are dropped") {
    driver d(settings(supervision_strategy::one_for_one, three));
    d.start_all();
    CHECK(d.exited(1) == "start 1");
    CHECK(d.launched(1) == "");
    CHECK(d.exited(1) == "timer 1 100ms");
    CHECK(d.stop() == "stop 2");
    CHECK(d.stop() == "");  // under way
    CHECK(d.timer(1) == "");  // the restart is dropped
    CHECK(d.exited(2, false) == "stop 0");
    CHECK(d.exited(0, false) == "stopped");
    CHECK(d.steps.current() == supervisor_steps::phase::stopped);
    CHECK(d.steps.state(1) == child_state::idle);
  }

  TEST_CASE("a child ending on its own during the stop is not restarted and not waited for") {
    driver d(settings(supervision_strategy::one_for_one, three));
    d.start_all();
    CHECK(d.stop() == "stop 2");
    CHECK(d.exited(0) == "");  // ended meanwhile
    CHECK(d.exited(2, false) == "stop 1");
    CHECK(d.exited(1, false) == "stopped");
  }

  TEST_CASE("stop before begin is over at once") {
    driver d(settings(supervision_strategy::one_for_one, three));
    CHECK(d.stop() == "stopped");
    CHECK(d.begin() == "");
  }

  TEST_CASE("a child that cannot start the first time gives up at once, later it counts as an end") {
    driver d(settings(supervision_strategy::one_for_one, three));
    CHECK(d.begin() == "start 0");
    CHECK(d.launched(0) == "start 1");
    CHECK(d.failed_launch(1) == "stop 0");
    CHECK(d.exited(0, false) == "gave_up 1");

    driver later(settings(supervision_strategy::one_for_one, three));
    later.start_all();
    CHECK(later.exited(1) == "start 1");
    CHECK(later.failed_launch(1) == "timer 1 100ms");
    CHECK(later.steps.state(1) == child_state::waiting);
  }

  TEST_CASE("a child that ends while it is the one the ordered start waits for is restarted before the next starts") {
    driver d(settings(supervision_strategy::one_for_one, three));
    CHECK(d.begin() == "start 0");
    CHECK(d.launched(0) == "start 1");
    CHECK(d.launched(1, true) == "");
    CHECK(d.exited(1) == "start 1");
    CHECK(d.launched(1, true) == "");
    CHECK(d.ready(1) == "start 2");
  }

  TEST_CASE("reports after the end change nothing") {
    driver d(settings(supervision_strategy::one_for_one, three));
    d.start_all();
    CHECK(d.stop() == "stop 2");
    CHECK(d.exited(2, false) == "stop 1");
    CHECK(d.exited(1, false) == "stop 0");
    CHECK(d.exited(0, false) == "stopped");
    CHECK(d.exited(0) == "");
    CHECK(d.hung(1) == "");
    CHECK(d.timer(supervisor_steps::group) == "");
    CHECK(d.stop() == "");
  }
}
