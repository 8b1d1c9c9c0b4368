// A pool's scheduling, without processes: which worker gets which task, when workers are
// started, recycled and stopped, and what a worker's end means for the tasks it held. The pool
// core feeds it events (a task submitted, a result back, a worker ended…) and carries out the
// actions it appends (start a worker, send a task, stop a worker, fail a task); the tests drive
// it by hand (tests/pool_scheduler.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace herd::detail {

struct pool_limits {
  std::size_t processes = 1;
  /// A worker leaves after this many tasks (0: never), less a random part of up to a quarter
  /// so that workers started together do not all leave together.
  std::size_t max_tasks_per_child = 0;
  /// How often a task lost to a worker's death is run again.
  std::size_t retries = 0;
  /// A task that has been running when this many workers died is quarantined.
  std::size_t poison_after = 2;
  /// Tasks a worker runs at once (coroutine tasks; 1 for plain functions).
  std::size_t concurrency = 1;
  /// Seeds the recycling jitter (tests pin it).
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  /// Tasks sent ahead to one worker are enough to keep it busy this long (by the tasks' mean
  /// run time so far), so it never waits for the parent between short tasks, and the parent
  /// wakes to refill it a few times per millisecond at most; within
  /// [1, max_window]. Long tasks go one at a time, so none waits behind another on a busy worker.
  std::chrono::nanoseconds ahead = std::chrono::microseconds(1000);
  std::size_t max_window = 256;
};

class pool_scheduler {
 public:
  using task_id = std::uint64_t;
  using worker_id = std::uint32_t;

  enum class failure : std::uint8_t {
    worker_died,         // running when its worker died, no retry left
    poison_task,         // running when poison_after workers died
    initializer_failed,  // the pool's initializer failed: no task will run
    closed,              // terminate(): never started
    aborted,             // terminate() while it ran, or its worker was stopped for it (cancel)
    timed_out,           // ran longer than the pool's task_timeout
  };

  /// Why a worker ended, as the core saw it.
  enum class ending : std::uint8_t {
    exited,              // left on its own or on request (quota reached, pool closing): not a death
    died,                // any other end: a signal, an exit before its quota, a crash
    initializer_failed,  // died before it was ready, because the initializer failed
  };

  struct action {
    enum kind_type : std::uint8_t {
      start_worker,  // start `worker`, which leaves by itself after `quota` tasks (0: never)
      send,          // send `task` to `worker`
      stop_worker,   // stop `worker` by the stop policy (it runs a task being cancelled or late)
      cancel_running,  // ask `worker` to cancel its coroutine `task` (concurrency > 1): its other
                       // tasks run on; the core calls stop_worker() if `task` does not end
      retire_worker, // ask `worker` to leave once it has finished what it holds (pool closing)
      fail,          // complete `task` with `why`
    };
    kind_type kind;
    worker_id worker = 0;
    task_id task = 0;
    failure why = failure::worker_died;
    std::size_t quota = 0;
    friend bool operator==(const action&, const action&) = default;
  };
  using actions = std::vector<action>;

  struct worker_stats {
    worker_id id;
    std::size_t done;
    std::size_t holding;
  };
  struct stats {
    std::size_t queued = 0, running = 0, done = 0, failed = 0, retried = 0, worker_restarts = 0;
  };

  explicit pool_scheduler(const pool_limits& limits);

  /// The time of the events that follow (a steady clock's): a worker whose current task has run
  /// far longer than tasks do is sent nothing more until it answers, so that no task waits
  /// behind a long one while another worker is free.
  void at(std::chrono::nanoseconds now) noexcept { now_ = now; }

  /// Starts the first workers.
  void start(actions& out);
  /// A new task, queued behind the others (false, and nothing appended, once closed).
  bool submit(task_id task, actions& out);
  /// A result came back from `worker` (a value, an exception — `failed` — or "skipped" for a
  /// withdrawn task); `run_time` is how long the worker ran it.
  void result(worker_id worker, task_id task, std::chrono::nanoseconds run_time, bool failed, actions& out);
  /// `worker` ended; `running` are the tasks it was running then (the rest of what it held had
  /// not started). Its other tasks run elsewhere; the running ones are retried, quarantined or
  /// failed; a replacement starts if the pool still needs one.
  void worker_ended(worker_id worker, ending how, std::span<const task_id> running, actions& out);

  enum class place : std::uint8_t { unknown, queued, sent };
  /// Where `task` is, for a cancellation: a queued task is removed (and `fail aborted` appended);
  /// for a sent one the worker is stored in `worker`, and the core either withdraws it before it
  /// starts (then calls withdrawn()) or finds it running (then calls stop_running()).
  place cancel(task_id task, actions& out, worker_id* worker = nullptr);
  /// `task` was sent but will not run (the worker skips it and reports so): it fails `aborted` now.
  void withdrawn(task_id task, actions& out);
  /// `task`, sent to `worker` and running there, must end now (`why`: aborted or timed_out):
  /// the task fails, the worker is stopped and replaced, its other tasks run elsewhere. A worker
  /// that runs several tasks at once is asked to cancel that one instead (`cancel_running`).
  void stop_running(worker_id worker, task_id task, failure why, actions& out);
  /// Stops `worker` by the stop policy and starts its replacement; what it held, running or not,
  /// runs elsewhere (the pool stopped it: nothing it held is to blame).
  void stop_worker(worker_id worker, actions& out);

  /// No new tasks; queued ones still run, then workers are retired.
  void close(actions& out);
  /// Everything stops: queued tasks fail `closed`, sent ones `aborted`, workers are stopped.
  void terminate(actions& out);

  bool closed() const noexcept { return closed_; }
  /// Closed and every worker has ended.
  bool finished() const noexcept { return closed_ && workers_.empty(); }
  bool broken() const noexcept { return broken_; }
  stats counters() const noexcept;
  std::vector<worker_stats> workers() const;
  /// How many tasks a worker is sent ahead of its results right now.
  std::size_t window() const noexcept;
  /// The mean run time of tasks so far (zero before the first answer).
  std::chrono::nanoseconds mean_run_time() const noexcept {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(mean_run_ns_));
  }

 private:
  struct task_record {
    std::optional<worker_id> worker;  // sent to
    std::size_t deaths = 0;
    std::size_t retries = 0;
    bool abandoned = false;  // withdrawn or stopped: completed already, a result is ignored
  };
  struct worker_record {
    std::vector<task_id> holding;
    std::size_t quota = 0;  // 0: unlimited
    std::size_t sent = 0;
    std::size_t done = 0;
    std::chrono::nanoseconds busy_since{0};  // when its oldest held task was sent, or last answered
    bool leaving = false;  // quota sent, retired or stopped: gets nothing more
    bool stopped = false;  // stopped by the pool: what it held is not to blame for its end
    bool retired = false;
  };

  void dispatch(actions& out);
  bool stalled(const worker_record& w) const noexcept;
  void start_worker(actions& out);
  bool needs_worker() const noexcept;
  std::size_t draw_quota();
  void forget_held(worker_record& w, task_id task);
  void fail(task_id task, failure why, actions& out);
  void retire_idle(actions& out);

  pool_limits limits_;
  std::uint64_t random_state_;
  std::unordered_map<task_id, task_record> tasks_;
  std::deque<task_id> queue_;
  std::unordered_map<worker_id, worker_record> workers_;
  worker_id next_worker_ = 0;
  std::size_t active_ = 0;  // workers not leaving
  double mean_run_ns_ = 0;  // 0: nothing measured yet
  std::chrono::nanoseconds now_{0};
  bool closed_ = false;
  bool broken_ = false;
  stats stats_;
};

}  // namespace herd::detail
