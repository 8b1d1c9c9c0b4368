// The pool's scheduling on its own, without processes (src/detail/pool_scheduler.hpp): which
// worker gets which task, what a worker's death means for each task it held (retry, quarantine,
// fail), recycling with jitter, cancellation, close and terminate.
#include "detail/pool_scheduler.hpp"  // first: the header stands alone

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <set>
#include <vector>

namespace {

using herd::detail::pool_limits;
using herd::detail::pool_scheduler;
using action = pool_scheduler::action;
using failure = pool_scheduler::failure;
using ending = pool_scheduler::ending;
using namespace std::chrono_literals;

std::vector<action> of_kind(const pool_scheduler::actions& all, action::kind_type kind) {
  std::vector<action> some;
  for (const action& a : all)
    if (a.kind == kind) some.push_back(a);
  return some;
}

// A scheduler with `n` workers started (ids 0..n-1), the start actions taken.
pool_scheduler started(pool_limits limits) {
  pool_scheduler s(limits);
  pool_scheduler::actions out;
  s.start(out);
  REQUIRE(of_kind(out, action::start_worker).size() == limits.processes);
  return s;
}

pool_limits workers(std::size_t n) {
  pool_limits limits;
  limits.processes = n;
  return limits;
}

}  // namespace

TEST_CASE("pool scheduler: one task per worker until run times are known then the least loaded first") {
  pool_scheduler s = started(workers(2));
  pool_scheduler::actions out;
  for (pool_scheduler::task_id t = 1; t <= 4; ++t) CHECK(s.submit(t, out));
  // Nothing measured yet: one task each, the rest wait (a long task never holds another back).
  const auto sends = of_kind(out, action::send);
  REQUIRE(sends.size() == 2);
  CHECK(sends[0] == action{action::send, 0, 1});
  CHECK(sends[1] == action{action::send, 1, 2});
  CHECK(s.counters().queued == 2);
  CHECK(s.counters().running == 2);

  out.clear();
  s.result(1, 2, 1ms, false, out);  // worker 1 answers first: it gets the next task
  CHECK(out == pool_scheduler::actions{{action::send, 1, 3}});
}

TEST_CASE("pool scheduler: short tasks are sent ahead so a worker never waits for the parent") {
  pool_limits limits = workers(1);
  limits.ahead = 200us;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  for (pool_scheduler::task_id t = 1; t <= 100; ++t) s.submit(t, out);
  CHECK(of_kind(out, action::send).size() == 1);
  out.clear();
  s.result(0, 1, 10us, false, out);  // 10 µs tasks: 20 fit in 200 µs
  CHECK(s.window() == 20);
  CHECK(of_kind(out, action::send).size() == 20);
  // Long tasks again: back to one at a time (the mean follows, slowly).
  for (pool_scheduler::task_id t = 2; t <= 21; ++t) s.result(0, t, 5ms, false, out);
  CHECK(s.window() == 1);
}

TEST_CASE("pool scheduler: a worker's death fails only the task it was running and requeues the others") {
  pool_limits limits = workers(2);
  limits.ahead = 1ms;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  s.submit(1, out);
  s.result(0, 1, 100us, false, out);  // window 10 from now on
  out.clear();
  for (pool_scheduler::task_id t = 10; t < 16; ++t) s.submit(t, out);
  // Worker 0 holds 10, 12, 14; worker 1 holds 11, 13, 15 (least loaded first).
  const auto sends = of_kind(out, action::send);
  REQUIRE(sends.size() == 6);
  CHECK(sends[0].worker == 0);
  CHECK(sends[1].worker == 1);
  out.clear();
  const pool_scheduler::task_id running[] = {10};
  s.worker_ended(0, ending::died, running, out);
  // Task 10 fails; a new worker starts and takes 12 and 14 first, in their order.
  CHECK(of_kind(out, action::fail) == std::vector<action>{{action::fail, 0, 10, failure::worker_died}});
  const auto starts = of_kind(out, action::start_worker);
  REQUIRE(starts.size() == 1);
  CHECK(starts[0].worker == 2);
  const auto resent = of_kind(out, action::send);
  REQUIRE(resent.size() == 2);
  CHECK(resent[0] == action{action::send, 2, 12});
  CHECK(resent[1] == action{action::send, 2, 14});
  CHECK(s.counters().worker_restarts == 1);
  CHECK(s.counters().failed == 1);
}

TEST_CASE("pool scheduler: retries run a task lost to a death again then it fails worker_died") {
  pool_limits limits = workers(1);
  limits.retries = 2;
  limits.poison_after = 10;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  s.submit(7, out);
  const pool_scheduler::task_id running[] = {7};
  for (pool_scheduler::worker_id w = 0; w < 2; ++w) {
    out.clear();
    s.worker_ended(w, ending::died, running, out);
    CHECK(of_kind(out, action::fail).empty());
    CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, w + 1, 7}});
  }
  out.clear();
  s.worker_ended(2, ending::died, running, out);
  CHECK(of_kind(out, action::fail) == std::vector<action>{{action::fail, 0, 7, failure::worker_died}});
  CHECK(s.counters().retried == 2);
}

TEST_CASE("pool scheduler: a task that killed poison_after workers is quarantined") {
  pool_limits limits = workers(1);
  limits.retries = 5;
  limits.poison_after = 2;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  s.submit(3, out);
  const pool_scheduler::task_id running[] = {3};
  s.worker_ended(0, ending::died, running, out);
  out.clear();
  s.worker_ended(1, ending::died, running, out);
  CHECK(of_kind(out, action::fail) == std::vector<action>{{action::fail, 0, 3, failure::poison_task}});
  // The pool goes on: a replacement worker is there for the next task.
  CHECK(of_kind(out, action::start_worker).size() == 1);
  out.clear();
  s.submit(4, out);
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 2, 4}});
}

TEST_CASE("pool scheduler: a failing initializer fails every task now and later and starts no worker") {
  pool_scheduler s = started(workers(2));
  pool_scheduler::actions out;
  for (pool_scheduler::task_id t = 1; t <= 5; ++t) s.submit(t, out);
  out.clear();
  s.worker_ended(0, ending::initializer_failed, {}, out);
  CHECK(s.broken());
  CHECK(of_kind(out, action::start_worker).empty());
  std::set<pool_scheduler::task_id> failed;
  for (const action& a : of_kind(out, action::fail)) {
    CHECK(a.why == failure::initializer_failed);
    failed.insert(a.task);
  }
  // Task 1 was held by the failed worker, 3–5 queued; task 2 is still with worker 1.
  CHECK(failed == std::set<pool_scheduler::task_id>{1, 3, 4, 5});
  out.clear();
  s.submit(6, out);
  CHECK(out == pool_scheduler::actions{{action::fail, 0, 6, failure::initializer_failed}});
  out.clear();
  s.result(1, 2, 1ms, false, out);
  out.clear();
  s.worker_ended(1, ending::initializer_failed, {}, out);
  CHECK(out.empty());
}

TEST_CASE("pool scheduler: max_tasks_per_child quotas vary by up to a quarter and replacements start early") {
  pool_limits limits = workers(4);
  limits.max_tasks_per_child = 100;
  pool_scheduler s(limits);
  pool_scheduler::actions out;
  s.start(out);
  std::set<std::size_t> quotas;
  for (const action& a : out) {
    CHECK(a.quota >= 75);
    CHECK(a.quota <= 100);
    quotas.insert(a.quota);
  }
  CHECK(quotas.size() > 1);  // not all workers leave together

  // A worker whose last task is sent gets no more, and its replacement starts right then.
  limits = workers(1);
  limits.max_tasks_per_child = 2;
  pool_scheduler one(limits);
  out.clear();
  one.start(out);
  const std::size_t quota = out.at(0).quota;
  REQUIRE((quota == 1 || quota == 2));
  for (pool_scheduler::task_id t = 1; t <= quota; ++t) {
    out.clear();
    one.submit(t, out);
    if (t < quota) one.result(0, t, 1ms, false, out);
  }
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 0, quota}});
  CHECK(of_kind(out, action::start_worker).size() == 1);
  out.clear();
  one.submit(100, out);
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 1, 100}});
  out.clear();
  // The old worker answers and leaves on its own: not a death, nothing more to start.
  one.result(0, quota, 1ms, false, out);
  one.worker_ended(0, ending::exited, {}, out);
  CHECK(out.empty());
  CHECK(one.counters().worker_restarts == 0);
}

TEST_CASE("pool scheduler: cancelling a queued task removes it and a sent one names its worker") {
  pool_scheduler s = started(workers(1));
  pool_scheduler::actions out;
  s.submit(1, out);
  s.submit(2, out);
  out.clear();
  CHECK(s.cancel(2, out) == pool_scheduler::place::queued);
  CHECK(out == pool_scheduler::actions{{action::fail, 0, 2, failure::aborted}});
  out.clear();
  pool_scheduler::worker_id worker = 99;
  CHECK(s.cancel(1, out, &worker) == pool_scheduler::place::sent);
  CHECK(worker == 0);
  CHECK(out.empty());
  CHECK(s.cancel(42, out) == pool_scheduler::place::unknown);
}

TEST_CASE("pool scheduler: a withdrawn task fails at once and its skipped answer is ignored") {
  pool_scheduler s = started(workers(1));
  pool_scheduler::actions out;
  s.submit(1, out);
  s.submit(2, out);
  out.clear();
  s.withdrawn(1, out);
  CHECK(out == pool_scheduler::actions{{action::fail, 0, 1, failure::aborted}});
  out.clear();
  s.result(0, 1, 0ns, false, out);  // "skipped"
  CHECK(out == pool_scheduler::actions{{action::send, 0, 2}});
  CHECK(s.counters().done == 0);
  CHECK(s.counters().failed == 1);
}

// One worker running two tasks at once, sent tasks 1 and 2; task 3 queued.
static pool_scheduler two_of_three_sent_to_one_worker() {
  pool_limits limits = workers(1);
  limits.concurrency = 2;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  for (pool_scheduler::task_id t = 1; t <= 3; ++t) s.submit(t, out);
  CHECK(of_kind(out, action::send).size() == 2);
  return s;
}

TEST_CASE("pool scheduler: a late task of a concurrent worker is cancelled and a stop blames nothing it held") {
  pool_scheduler s = two_of_three_sent_to_one_worker();
  pool_scheduler::actions out;
  // The worker runs task 2 beside task 1: it is asked to cancel task 1 only.
  s.stop_running(0, 1, failure::timed_out, out);
  CHECK(out == pool_scheduler::actions{{action::fail, 0, 1, failure::timed_out}, {action::cancel_running, 0, 1}});
  out.clear();
  // Task 1 ignored its cancellation: the core stops the worker.
  s.stop_worker(0, out);
  CHECK(of_kind(out, action::stop_worker) == std::vector<action>{{action::stop_worker, 0}});
  CHECK(of_kind(out, action::start_worker).size() == 1);
  // The replacement takes task 3 at once; task 2 was running beside task 1 when the worker was
  // killed: it runs again, not counted as a death.
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 1, 3}});
  out.clear();
  const pool_scheduler::task_id running[] = {1, 2};
  s.worker_ended(0, ending::died, running, out);
  CHECK(of_kind(out, action::fail).empty());
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 1, 2}});
  CHECK(s.counters().worker_restarts == 0);
  CHECK(s.counters().failed == 1);
}

TEST_CASE("pool scheduler: a cancelled task that ends by itself frees its place and the worker serves on") {
  pool_scheduler s = two_of_three_sent_to_one_worker();
  pool_scheduler::actions out;
  s.stop_running(0, 1, failure::aborted, out);
  out.clear();
  s.result(0, 1, 1ms, true, out);  // it ended by its cancellation: already failed, not counted again
  CHECK(out == pool_scheduler::actions{{action::send, 0, 3}});
  CHECK(s.counters().failed == 1);
  CHECK(s.counters().done == 0);
  CHECK(s.workers().size() == 1);
}

TEST_CASE("pool scheduler: a worker running fewer tasks than its concurrency is never taken for stalled") {
  pool_limits limits = workers(1);
  limits.concurrency = 4;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  s.at(0ms);
  s.submit(1, out);
  // Long after the first was sent, with no answer yet: the other three places still get tasks.
  s.at(50ms);
  for (pool_scheduler::task_id t = 2; t <= 4; ++t) s.submit(t, out);
  CHECK(of_kind(out, action::send).size() == 4);
}

TEST_CASE("pool scheduler: close lets queued tasks finish then retires every worker") {
  pool_scheduler s = started(workers(2));
  pool_scheduler::actions out;
  for (pool_scheduler::task_id t = 1; t <= 3; ++t) s.submit(t, out);
  out.clear();
  s.close(out);
  CHECK(out.empty());
  CHECK_FALSE(s.submit(4, out));
  s.result(1, 2, 1ms, false, out);  // worker 1 takes task 3
  CHECK(out == pool_scheduler::actions{{action::send, 1, 3}});
  out.clear();
  s.result(0, 1, 1ms, false, out);  // nothing left for worker 0
  CHECK(out == pool_scheduler::actions{{action::retire_worker, 0}});
  out.clear();
  s.result(1, 3, 1ms, false, out);
  CHECK(out == pool_scheduler::actions{{action::retire_worker, 1}});
  out.clear();
  s.worker_ended(0, ending::exited, {}, out);
  CHECK_FALSE(s.finished());
  s.worker_ended(1, ending::exited, {}, out);
  CHECK(out.empty());
  CHECK(s.finished());
}

TEST_CASE("pool scheduler: a worker dying while the pool closes is replaced for the queued tasks") {
  pool_scheduler s = started(workers(1));
  pool_scheduler::actions out;
  s.submit(1, out);
  s.submit(2, out);
  s.close(out);
  out.clear();
  const pool_scheduler::task_id running[] = {1};
  s.worker_ended(0, ending::died, running, out);
  CHECK(of_kind(out, action::start_worker).size() == 1);
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 1, 2}});
}

TEST_CASE("pool scheduler: terminate fails queued tasks closed and sent ones aborted and stops workers") {
  pool_scheduler s = started(workers(2));
  pool_scheduler::actions out;
  for (pool_scheduler::task_id t = 1; t <= 4; ++t) s.submit(t, out);
  out.clear();
  s.terminate(out);
  std::vector<action> fails = of_kind(out, action::fail);
  std::sort(fails.begin(), fails.end(), [](const action& a, const action& b) { return a.task < b.task; });
  REQUIRE(fails.size() == 4);
  CHECK(fails[0].why == failure::aborted);
  CHECK(fails[1].why == failure::aborted);
  CHECK(fails[2].why == failure::closed);
  CHECK(fails[3].why == failure::closed);
  CHECK(of_kind(out, action::stop_worker).size() == 2);
  out.clear();
  const pool_scheduler::task_id running0[] = {1};
  s.worker_ended(0, ending::died, running0, out);
  s.worker_ended(1, ending::died, {}, out);
  CHECK(out.empty());  // no retry, no replacement, no second failure
  CHECK(s.finished());
}

TEST_CASE("pool scheduler: a worker stuck in a long task gets nothing more while another is free") {
  pool_limits limits = workers(2);
  limits.ahead = 1ms;
  pool_scheduler s = started(limits);
  pool_scheduler::actions out;
  s.at(0ms);
  s.submit(1, out);  // worker 0: a long task
  s.submit(2, out);  // worker 1
  s.at(1ms);
  s.result(1, 2, 10us, false, out);  // short tasks: the window grows to 100
  out.clear();
  s.at(50ms);  // worker 0 has been on task 1 for 50 ms
  for (pool_scheduler::task_id t = 10; t < 14; ++t) s.submit(t, out);
  for (const action& a : of_kind(out, action::send)) CHECK(a.worker == 1);
  CHECK(of_kind(out, action::send).size() == 4);
  out.clear();
  s.result(0, 1, 50ms, false, out);  // it answers: it may take work again
  s.submit(20, out);
  CHECK(of_kind(out, action::send) == std::vector<action>{{action::send, 0, 20}});
}
