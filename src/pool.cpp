// herd::pool's core: the parent's side of the workers (their links, processes and ends), the
// tasks and who awaits them, carried out under one lock as pool_scheduler decides.
#include "detail/descriptors.hpp"
#include "detail/fork_child.hpp"
#include "detail/fork_lock.hpp"
#include "detail/function_process.hpp"
#include "detail/outcome.hpp"
#include "detail/pool_scheduler.hpp"
#include "detail/pool_worker.hpp"
#include "detail/spawn_process.hpp"
#include "detail/travelling_child.hpp"
#include "detail/post_completion.hpp"
#include "detail/worker_link.hpp"

#include <herd/pool.hpp>
#include <herd/process.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

namespace herd {

task_error::task_error(error_code code, const std::string& message, int pid, std::optional<exit_status> status,
                       std::string function)
    : boost::system::system_error(code, message), pid_(pid), status_(std::move(status)), function_(std::move(function)) {}

namespace detail {

using failure = pool_scheduler::failure;
using completion = asio::any_completion_handler<void(std::exception_ptr, std::string)>;

/// Who learns a task's outcome: called once per task, under the pool's lock (it must not call
/// back into the pool; cancellations it wants go to pool_core::cancel_later).
struct task_owner {
  virtual ~task_owner() = default;
  virtual void finished(std::size_t index, std::exception_ptr error, std::string_view bytes) = 0;
};

namespace {

struct pending_task {
  task_call call;
  std::string args;
  std::shared_ptr<task_owner> owner;
  std::size_t index;
};

struct worker_record {
  pool_scheduler::worker_id id = 0;
  std::size_t quota = 0;
  std::string name;
  link_memory link;
  unique_fd memory;  // the link's memfd until the worker has it
  unique_fd wake;    // the worker's eventfd
  message_writer outbox;
  message_reader inbox;
  std::shared_ptr<function_process> process;
  std::vector<std::uint64_t> withdrawing;  // tasks whose withdrawal slot this side wrote
  bool touched = false;                    // written to or read from: it may need waking

  worker_record() = default;
  worker_record(const worker_record&) = delete;
  worker_record& operator=(const worker_record&) = delete;
  // Its descriptors are fork exclusions: taken out of the list as they close.
  ~worker_record() {
    if (memory) close_excluded(memory.release());
    if (wake) close_excluded(wake.release());
  }
};

// Completes `handler` on its own associated executor (the pool's if it has none), never inline,
// clearing its cancellation slot there.
template <typename Handler, typename... Values>
void complete_clearing_slot(const asio::any_io_executor& ex, Handler handler, Values... values) {
  const auto target = asio::get_associated_executor(handler, ex);
  asio::post(ex, asio::bind_executor(target, [h = std::move(handler), ... v = std::move(values)]() mutable {
               asio::get_associated_cancellation_slot(h).clear();
               std::move(h)(std::move(v)...);
             }));
}

}  // namespace

/// A pool's own event loop, on an internal thread (a pool made without an executor).
struct owned_loop {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  bool ends_by_itself = false;  // its pool was destroyed on this thread: the thread frees it
  std::thread thread;
  owned_loop()
      : thread([this] {
          io.run();
          if (ends_by_itself) {
            thread.detach();
            delete this;
          }
        }) {}
  ~owned_loop() {
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
};

struct pool_core : std::enable_shared_from_this<pool_core> {
  pool_core(const asio::any_io_executor& executor, const pool_options& opts, std::thread::id loop)
      : ex(executor),
        workers_ex(asio::make_strand(executor)),
        options(opts),
        method(pool_start_method(opts.start_method, initializer_travels(opts))),
        processes(opts.processes != 0 ? opts.processes : std::max(1u, cpu_count())),
        scheduler(limits_of(opts, processes)),
        watch(executor),
        timeout_timer(executor),
        fork_retry(executor),
        loop_thread(loop) {}

  static pool_limits limits_of(const pool_options& o, std::size_t processes) {
    pool_limits limits;
    limits.processes = processes;
    limits.max_tasks_per_child = o.max_tasks_per_child;
    limits.retries = o.retries;
    limits.poison_after = std::max<std::size_t>(o.poison_after, 1);
    limits.concurrency = o.concurrency_per_worker;
    limits.seed ^= static_cast<std::uint64_t>(::getpid());
    return limits;
  }

  static bool initializer_travels(const pool_options& o) { return !o.initializer || o.initializer.travels(); }

  static void validate(const pool_options& o) {
    const herd::start_method method = pool_start_method(o.start_method, initializer_travels(o));
    if (method != herd::start_method::fork && !initializer_travels(o))
      throw boost::system::system_error(
          errc::invalid_argument,
          "herd: pool '" + o.name + "': the initializer '" +
              describe_function(o.initializer.type(), o.initializer.address()) +
              "' cannot travel to spawn or forkserver workers: it holds state herd::codec cannot encode (a "
              "lambda's captures); use a function or a captureless lambda, worker_initializer(f, initargs...), "
              "or start_method::fork");
    if (method != herd::start_method::fork && !initialized())
      throw boost::system::system_error(errc::invalid_argument,
                                        "herd: pool '" + o.name + "': start_method::spawn and forkserver run this "
                                                                  "program again: call herd::init(argc, argv) first "
                                                                  "thing in main");
    if (o.concurrency_per_worker == 0 || o.concurrency_per_worker > max_worker_concurrency)
      throw boost::system::system_error(errc::invalid_argument,
                                        "herd: pool '" + o.name + "': concurrency_per_worker is " +
                                            std::to_string(o.concurrency_per_worker) + "; it must be 1 to " +
                                            std::to_string(max_worker_concurrency));
  }

  // Called once, right after construction (shared_from_this works from here on).
  void start() {
    unique_fd wake = make_eventfd(0, 0);
    {
      fork_guard guard;
      exclude_from_forks(wake.get());
    }
    watch.assign(wake.release());
    stream_window = 4 * processes;
    std::unique_lock lock(mutex);
    pool_scheduler::actions out;
    scheduler.start(out);
    carry_out(out);
    fork_pending();
    arm(lock);
  }

  // ----- tasks in -----

  std::uint64_t submit(const task_call& call, std::string args, std::shared_ptr<task_owner> owner, std::size_t index) {
    std::unique_lock lock(mutex);
    if (scheduler.closed())
      throw boost::system::system_error(errc::closed, "herd: pool '" + options.name +
                                                          "' is closed (close() or terminate() was called)");
    const std::uint64_t id = next_task++;
    tasks.emplace(id, pending_task{call, std::move(args), std::move(owner), index});
    tick();
    pool_scheduler::actions out;
    scheduler.submit(id, out);
    carry_out(out);
    finish_locked(lock);
    return id;
  }

  /// `hard`: a running task's worker is stopped (a cancelled await); otherwise a running task
  /// is left to finish and only what has not started is dropped (a map whose result is already
  /// decided, a stream no one reads any more).
  void cancel(std::uint64_t id, bool hard = true) {
    std::unique_lock lock(mutex);
    cancel_locked(id, hard);
    finish_locked(lock);
  }

  void cancel_locked(std::uint64_t id, bool hard) {
    tick();
    pool_scheduler::actions out;
    pool_scheduler::worker_id w = 0;
    if (scheduler.cancel(id, out, &w) == pool_scheduler::place::sent) {
      const auto found = workers.find(w);
      if (found != workers.end() && withdraw(*found->second, id)) {
        scheduler.withdrawn(id, out);
      } else if (hard) {
        if (found != workers.end() && found->second->process) stopping_pid = found->second->process->pid;
        scheduler.stop_running(w, id, failure::aborted, out);
      }
    }
    carry_out(out);
    stopping_pid = 0;
  }

  // Asks the worker to skip `task`; false if it is running it (or no slot is free).
  bool withdraw(worker_record& w, std::uint64_t task) {
    link_control& control = w.link.control();
    for (auto& slot : control.withdrawn) {
      std::uint64_t expected = 0;
      if (!slot.compare_exchange_strong(expected, task)) continue;
      // Written before the running slots are read, as the worker publishes a running task before
      // it reads the withdrawals: one side sees the other.
      bool running = false;
      for (const auto& r : control.running)
        if (r.load(std::memory_order_seq_cst) == task) running = true;
      if (running) {
        expected = task;
        if (slot.compare_exchange_strong(expected, 0)) return false;  // not claimed: it runs
      }
      w.withdrawing.push_back(task);
      return true;
    }
    return false;
  }

  void tick() noexcept { scheduler.at(std::chrono::steady_clock::now().time_since_epoch()); }

  // ----- the scheduler's actions -----

  void carry_out(pool_scheduler::actions& out) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      const pool_scheduler::action a = out[i];
      switch (a.kind) {
        case pool_scheduler::action::start_worker:
          make_worker(a.worker, a.quota);
          break;
        case pool_scheduler::action::send:
          send(a.worker, a.task);
          break;
        case pool_scheduler::action::stop_worker:
          stop_worker(a.worker, out);
          break;
        case pool_scheduler::action::cancel_running:
          cancel_running(a.worker, a.task, out);
          break;
        case pool_scheduler::action::retire_worker:
          if (const auto w = workers.find(a.worker); w != workers.end()) {
            w->second->outbox.write(link_header{0, link_kind::quit, 0, 0, 0}, {});
            w->second->touched = true;
          }
          break;
        case pool_scheduler::action::fail:
          fail(a.task, a.why);
          break;
      }
    }
    out.clear();
  }

  void make_worker(pool_scheduler::worker_id id, std::size_t quota) {
    auto w = std::make_unique<worker_record>();
    w->id = id;
    w->quota = quota;
    w->name = options.name + "-worker-" + std::to_string(id);
    to_fork.push_back(id);
    try {
      {
        fork_guard guard;
        w->link = link_memory::create(ring_capacity());
        w->memory.reset(w->link.release_memory());
        exclude_from_forks(w->memory.get());
        w->wake = make_eventfd(0, 0);
        exclude_from_forks(w->wake.get());
      }
      w->link.keep_from_forks();
      w->link.control().parent_armed.store(1);  // the loop waits for answers from its first on
      w->outbox = message_writer(&w->link.to_worker());
      w->inbox = message_reader(&w->link.to_parent());
      workers.emplace(id, std::move(w));
    } catch (const std::exception&) {
      // No descriptor or memory for its link (the fd limit, say): fork_pending finds no record
      // and counts a start that failed, tried again a moment later. Tasks sent to it meanwhile
      // go nowhere and run elsewhere then.
    }
  }

  std::size_t ring_capacity() const {
    std::size_t capacity = 4096;
    while (capacity < options.link_bytes && capacity < (std::size_t(1) << 30)) capacity <<= 1;
    return capacity;
  }

  static int dup_fd(int fd) {
    const int copy = copy_above_stdio(fd);
    if (copy < 0) throw_error(error_code(errno, boost::system::system_category()), "pool: dup");
    return copy;
  }

  void send(pool_scheduler::worker_id worker, std::uint64_t task) {
    const auto w = workers.find(worker);
    const auto t = tasks.find(task);
    if (w == workers.end() || t == tasks.end()) return;
    const pending_task& p = t->second;
    const link_header header{task, link_kind::task, 0, reinterpret_cast<std::uintptr_t>(p.call.entry), p.call.callable};
    if (!w->second->outbox.write(header, p.args)) w->second->link.control().parent_wants_room.store(1);
    w->second->touched = true;
    // A loop that went to sleep after the last answer would be woken for this one, which costs
    // more than the whole round trip of a short task: it looks for the answer instead.
    if (keep_polling(true)) poll_soon();
    if (options.task_timeout.count() > 0) arm_timeout(options.task_timeout);
  }

  void stop_worker(pool_scheduler::worker_id worker, pool_scheduler::actions& out) {
    const auto w = workers.find(worker);
    if (w == workers.end()) return;
    if (w->second->process) {
      asio::post(workers_ex, [process = w->second->process] { process->begin_stop(exit_reason::stopped); });
      return;
    }
    // Never started: it ends here.
    to_fork.erase(std::remove(to_fork.begin(), to_fork.end(), worker), to_fork.end());
    forget_unstarted(worker, pool_scheduler::ending::exited, out);
  }

  // A worker running several coroutine tasks cancels one of them (its withdrawal slot, read for
  // running tasks too); one that has not ended after the stop policy's grace has its worker
  // stopped, as a worker running one task at a time would be at once.
  void cancel_running(pool_scheduler::worker_id worker, std::uint64_t task, pool_scheduler::actions& out) {
    const auto w = workers.find(worker);
    if (w == workers.end()) return;
    bool asked = false;
    for (auto& slot : w->second->link.control().withdrawn) {
      std::uint64_t expected = 0;
      if (slot.compare_exchange_strong(expected, task)) {
        asked = true;
        break;
      }
    }
    if (!asked) {
      scheduler.stop_worker(worker, out);
      return;
    }
    w->second->withdrawing.push_back(task);
    eventfd_add(w->second->wake.get(), 1);
    auto grace = std::make_shared<asio::steady_timer>(ex, std::max(options.stop.grace, std::chrono::milliseconds(10)));
    grace->async_wait([self = shared_from_this(), grace, worker, task](error_code) {
      std::unique_lock lock(self->mutex);
      const auto still = self->workers.find(worker);
      if (still == self->workers.end()) return;
      bool running = false;
      for (const auto& r : still->second->link.control().running) running |= r.load() == task;
      if (!running) return;
      pool_scheduler::actions later;
      self->tick();
      self->scheduler.stop_worker(worker, later);
      self->carry_out(later);
      self->finish_locked(lock);
    });
  }

  // A worker that never ran: stopped before its fork, or its start failed (a death, retried later).
  void forget_unstarted(pool_scheduler::worker_id id, pool_scheduler::ending how, pool_scheduler::actions& out) {
    if (how != pool_scheduler::ending::exited) fork_failed = true;
    workers.erase(id);
    scheduler.worker_ended(id, how, {}, out);
  }

  void fail(std::uint64_t task, failure why) {
    const auto t = tasks.find(task);
    if (t == tasks.end()) return;
    pending_task p = std::move(t->second);
    tasks.erase(t);
    p.owner->finished(p.index, failure_of(p.call, why), {});
  }

  // The worker stopped (or asked to cancel) for a running task, for messages.
  std::string stopped_worker() const {
    return stopping_pid != 0 ? "worker pid " + std::to_string(stopping_pid) : std::string("a worker");
  }
  std::string stopped_how() const {
    return options.concurrency_per_worker > 1 ? ", which was asked to cancel it" : ", which was stopped and replaced";
  }

  std::exception_ptr failure_of(const task_call& call, failure why) const {
    const std::string function = describe_function(*call.type, call.address);
    const std::string pool_name = "herd: pool '" + options.name + "': ";
    const std::string worker = ending_pid != 0 ? "worker pid " + std::to_string(ending_pid) : std::string("a worker");
    const std::string how = ending_status ? ending_status->to_string() : std::string("it ended");
    switch (why) {
      case failure::worker_died:
        return std::make_exception_ptr(task_error(errc::worker_died,
                                                  pool_name + function + " was running in " + worker +
                                                      ", which died: " + how,
                                                  ending_pid, ending_status, function));
      case failure::poison_task:
        return std::make_exception_ptr(task_error(
            errc::poison_task,
            pool_name + function + " was running in " + std::to_string(options.poison_after) +
                " workers that died (the last, " + worker + ": " + how + "); it is quarantined and will not run again",
            ending_pid, ending_status, function));
      case failure::initializer_failed:
        return std::make_exception_ptr(task_error(errc::initializer_failed,
                                                  pool_name + "the initializer failed in " + worker + " (" +
                                                      initializer_problem + "); " + function + " cannot run",
                                                  ending_pid, ending_status, function));
      case failure::timed_out:
        return std::make_exception_ptr(task_error(errc::timed_out,
                                                  pool_name + function + " ran longer than its task_timeout of " +
                                                      std::to_string(options.task_timeout.count()) + " ms in " +
                                                      stopped_worker() + stopped_how(),
                                                  stopping_pid, std::nullopt, function));
      case failure::closed:
        return std::make_exception_ptr(task_error(errc::closed,
                                                  pool_name + "terminated before " + function + " could run", 0,
                                                  std::nullopt, function));
      case failure::aborted:
        return std::make_exception_ptr(task_error(
            asio::error::operation_aborted,
            pool_name + function + " was cancelled" +
                (stopping_pid != 0 ? " while running in " + stopped_worker() + stopped_how() : std::string()),
            stopping_pid, std::nullopt, function));
    }
    return {};
  }

  // ----- forking workers (on the loop's threads, or the constructor's) -----

  // Forks the workers waiting for it. Those a failed fork's replacement adds wait for the next
  // round, a moment later (finish_locked), so a fork that keeps failing is no busy loop.
  void fork_pending() {
    std::vector<pool_scheduler::worker_id> now;
    now.swap(to_fork);
    for (const auto id : now) {
      const auto w = workers.find(id);
      if (w != workers.end()) {
        start_worker_process(*w->second);
      } else {
        pool_scheduler::actions out;
        forget_unstarted(id, pool_scheduler::ending::died, out);  // its link could not be made
        carry_out(out);
      }
    }
  }

  void start_worker_process(worker_record& w) {
    process_options worker_options;
    worker_options.name = w.name;
    worker_options.stop = options.stop;
    std::shared_ptr<function_process> process;
    try {
      if (method != herd::start_method::fork) {
        spawn_request request;
        worker_start start = worker_start_of(w);
        start.initializer = static_cast<bool>(options.initializer);
        request.role = spawned_worker_role(::getpid(), w.name, start);
        request.descriptors = {w.memory.get(), w.wake.get(), watch.native_handle()};
        unique_fd initializer;
        if (start.initializer) {
          initializer = call_memory(encode_child_call(options.initializer.travelling(), {}), w.name);
          request.descriptors.push_back(initializer.get());
        }
        process = start_role_process(workers_ex, worker_options, typeid(pool), nullptr, request, method);
      } else {
        process = fork_worker_process(w, worker_options);
      }
    } catch (const std::exception&) {
      // It could not start (fork failed, fd limit): it counts as a worker that died at once.
      pool_scheduler::actions out;
      forget_unstarted(w.id, pool_scheduler::ending::died, out);
      carry_out(out);
      return;
    }
    close_excluded(w.memory.release());
    w.process = process;
    asio::post(workers_ex, [self = shared_from_this(), process, id = w.id] {
      process->wait([self, id](error_code, exit_status status) { self->worker_ended(id, status); });
    });
  }

  // What every worker is told, whatever starts it (its descriptors are the start method's).
  worker_start worker_start_of(const worker_record& w) const {
    worker_start start;
    start.ring_capacity = ring_capacity();
    start.quota = w.quota;
    start.concurrency = options.concurrency_per_worker;
    return start;
  }

  std::shared_ptr<function_process> fork_worker_process(worker_record& w, const process_options& worker_options) {
    std::shared_ptr<function_process> process;
    {
      // The worker's copies of its descriptors are made, handed over and closed under the fork
      // lock: no other fork keeps one (the parent's own stay fork exclusions).
      fork_guard guard;
      worker_start start = worker_start_of(w);
      unique_fd memory(dup_fd(w.memory.get()));
      unique_fd wake_me(dup_fd(w.wake.get()));
      unique_fd wake_parent(dup_fd(watch.native_handle()));
      start.memory = memory.get();
      start.wake_me = wake_me.get();
      start.wake_parent = wake_parent.get();
      const std::function<void()>& initializer = options.initializer.local();
      auto body = [&](result_sink& sink) {
        run_pool_worker(start, initializer);
        sink.send_value({});
      };
      process = fork_process(workers_ex, worker_options, typeid(pool), nullptr, child_body(body));
    }
    return process;
  }

  // ----- answers from workers -----

  // Reads every answer that has arrived; true if there was any.
  bool drain(pool_scheduler::actions& out) {
    bool any = false;
    for (auto& [id, w] : workers) any |= drain(*w, out);
    return any;
  }

  bool drain(worker_record& w, pool_scheduler::actions& out) {
    bool any = false;
    link_header header;
    std::string_view payload;
    while (w.inbox.next(header, payload)) {
      any = true;
      answered(w, header, payload, out);
      w.inbox.release();
    }
    if (!w.outbox.idle()) w.link.control().parent_wants_room.store(w.outbox.pump() ? 0 : 1);
    w.touched = true;  // it may wait for room to answer, or for what was pumped
    return any;
  }

  void answered(worker_record& w, const link_header& header, std::string_view payload, pool_scheduler::actions& out) {
    if (!w.withdrawing.empty()) {
      const auto at = std::find(w.withdrawing.begin(), w.withdrawing.end(), header.task);
      if (at != w.withdrawing.end()) {
        w.withdrawing.erase(at);
        for (auto& slot : w.link.control().withdrawn) {
          std::uint64_t expected = header.task;
          slot.compare_exchange_strong(expected, 0);
        }
      }
    }
    const bool threw = header.kind == link_kind::exception;
    if (const auto t = tasks.find(header.task); t != tasks.end() && header.kind != link_kind::skipped) {
      pending_task p = std::move(t->second);
      tasks.erase(t);
      std::exception_ptr error;
      if (threw) {
        const parsed_outcome parsed = parse_outcome(payload);
        error = std::make_exception_ptr(child_error(std::string(parsed.type), std::string(parsed.message),
                                                    w.process ? w.process->pid : 0, w.name,
                                                    describe_function(*p.call.type, p.call.address)));
        payload = {};
      }
      p.owner->finished(p.index, error, payload);
    }
    scheduler.result(w.id, header.task, std::chrono::nanoseconds(header.a), threw, out);
  }

  void worker_ended(pool_scheduler::worker_id id, const exit_status& status) {
    std::unique_lock lock(mutex);
    const auto found = workers.find(id);
    if (found == workers.end()) return;
    worker_record& w = *found->second;
    tick();
    pool_scheduler::actions out;
    drain(w, out);  // what it answered before it ended counts
    carry_out(out);
    std::vector<std::uint64_t> running;
    for (const auto& r : w.link.control().running)
      if (const std::uint64_t task = r.load(); task != 0) running.push_back(task);

    ending_pid = w.process->pid;
    ending_status = status;
    pool_scheduler::ending how = pool_scheduler::ending::died;
    const parsed_outcome outcome = parse_outcome(w.process->received);
    const bool ready = w.link.control().ready.load() != 0;
    if (!ready && (outcome.kind == outcome_kind::exception || options.initializer)) {
      how = pool_scheduler::ending::initializer_failed;
      initializer_problem = outcome.kind == outcome_kind::exception
                                ? std::string(outcome.type) + ": " + std::string(outcome.message)
                                : "it ended: " + status.to_string();
    } else if (status.exited() && status.code() == 0 && outcome.kind == outcome_kind::result) {
      how = pool_scheduler::ending::exited;
    }
    scheduler.worker_ended(id, how, running, out);
    carry_out(out);
    ending_pid = 0;
    ending_status.reset();
    workers.erase(id);
    finish_locked(lock);
  }

  // ----- waking and being woken -----

  // Wakes the workers that may be asleep waiting for what was just written or read.
  void wake_touched() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    for (auto& [id, w] : workers) {
      if (!std::exchange(w->touched, false)) continue;
      auto& sleeping = w->link.control().worker_sleeping;
      if (sleeping.load(std::memory_order_relaxed) != 0 && sleeping.exchange(0) != 0) eventfd_add(w->wake.get(), 1);
    }
  }

  // The end of every locked section: cancellations owners asked for, workers to fork (on the
  // loop), wake-ups, joiners.
  void finish_locked(std::unique_lock<std::mutex>& lock) {
    while (!cancel_later.empty()) {
      const std::uint64_t id = cancel_later.back();
      cancel_later.pop_back();
      cancel_locked(id, false);
    }
    wake_touched();
    if (!to_fork.empty() && !fork_posted) {
      fork_posted = true;
      auto fork_now = [self = shared_from_this()] {
        std::unique_lock l(self->mutex);
        self->fork_posted = false;
        self->fork_failed = false;
        self->fork_pending();
        self->finish_locked(l);
      };
      if (fork_failed) {
        // The system refused a fork (process or memory limit): try again in a while.
        fork_retry.expires_after(std::chrono::milliseconds(100));
        fork_retry.async_wait([self = shared_from_this(), fork_now](error_code ec) {
          if (!ec) asio::post(self->workers_ex, fork_now);
        });
      } else {
        asio::post(workers_ex, std::move(fork_now));
      }
    }
    if (scheduler.finished() && !finished) {
      finished = true;
      error_code ignored;
      watch.cancel(ignored);
      timeout_timer.cancel();
      fork_retry.cancel();
      auto waiting = std::move(joiners);
      joiners.clear();
      for (auto& handler : waiting) complete_clearing_slot(ex, std::move(handler), error_code());
      finished_cv.notify_all();
    }
    (void)lock;
  }

  // Asks every worker for a wake-up at its next answer, then looks once more (an answer may
  // have come in between), and waits on the pool's eventfd.
  void arm(std::unique_lock<std::mutex>& lock) {
    tick();
    pool_scheduler::actions out;
    bool found = false;
    for (;;) {
      for (auto& [id, w] : workers) {
        w->link.control().parent_armed.store(1, std::memory_order_relaxed);
      }
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (!drain(out)) break;
      found = true;
      carry_out(out);
    }
    carry_out(out);
    if (found) stream_window.store(processes * std::max<std::size_t>(4, 2 * scheduler.window()), std::memory_order_relaxed);
    finish_locked(lock);
    if (finished) return;
    if (keep_polling(found)) {
      poll_soon();
      return;
    }
    if (watching) return;
    watching = true;
    watch.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec) return;
      std::unique_lock l(self->mutex);
      self->watching = false;
      eventfd_drain(self->watch.native_handle());
      self->arm(l);
    });
  }

  // Looks at the workers' answers again on the loop's next turn (at most one such look pending).
  void poll_soon() {
    if (poll_posted) return;
    poll_posted = true;
    asio::post(ex, [self = shared_from_this()] {
      ::sched_yield();  // a worker on this CPU runs first (see pool_worker.cpp)
      std::unique_lock l(self->mutex);
      self->poll_posted = false;
      self->arm(l);
    });
  }

  // Whether the loop looks at the workers' answers again right away instead of sleeping until
  // one wakes it: for a while after work was sent, while short tasks are out and a worker is
  // idle (so a core is free for it). A sleeping loop costs ~20 µs to wake on a VM, most of a
  // short task's round trip; this costs a little CPU of the loop's thread, and other handlers
  // still run in between.
  // `fresh`: an answer came or a task went out just now: the 100 µs of looking start again.
  bool keep_polling(bool fresh) {
    const auto now = std::chrono::steady_clock::now();
    if (fresh) polling_since = now;
    const auto counters = scheduler.counters();
    const bool worth_it = counters.running != 0 && counters.running < workers.size() &&
                          scheduler.mean_run_time() < std::chrono::microseconds(50) &&
                          now - polling_since < std::chrono::microseconds(100);
    return worth_it;
  }

  // ----- task timeouts -----

  void arm_timeout(std::chrono::steady_clock::duration after) {
    if (timeout_armed) return;
    timeout_armed = true;
    timeout_timer.expires_after(after);
    timeout_timer.async_wait([self = shared_from_this()](error_code ec) {
      std::unique_lock lock(self->mutex);
      self->timeout_armed = false;
      if (!ec) self->check_timeouts(lock);
    });
  }

  void check_timeouts(std::unique_lock<std::mutex>& lock) {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    const auto limit = std::chrono::duration_cast<std::chrono::steady_clock::duration>(options.task_timeout).count();
    auto next = limit;
    pool_scheduler::actions out;
    std::vector<std::pair<pool_scheduler::worker_id, std::uint64_t>> late;
    for (auto& [id, w] : workers) {
      const link_control& control = w->link.control();
      for (std::size_t i = 0; i < max_worker_concurrency; ++i) {
        const std::uint64_t task = control.running[i].load();
        if (task == 0 || !tasks.count(task)) continue;
        const auto ran = now - control.started_ns[i].load();
        if (ran >= limit)
          late.emplace_back(id, task);
        else
          next = std::min(next, limit - ran);
      }
    }
    for (const auto& [worker, task] : late) {
      if (const auto w = workers.find(worker); w != workers.end() && w->second->process)
        stopping_pid = w->second->process->pid;
      scheduler.stop_running(worker, task, failure::timed_out, out);
      carry_out(out);
      stopping_pid = 0;
    }
    if (!tasks.empty() && !scheduler.finished()) arm_timeout(std::chrono::steady_clock::duration(next));
    finish_locked(lock);
  }

  std::mutex mutex;
  asio::any_io_executor ex;
  // The worker processes' handles are not thread-safe: everything they do, and what this core
  // asks of them, runs in one strand.
  asio::any_io_executor workers_ex;
  pool_options options;
  herd::start_method method;
  std::size_t processes;
  pool_scheduler scheduler;
  std::unordered_map<std::uint64_t, pending_task> tasks;
  std::map<pool_scheduler::worker_id, std::unique_ptr<worker_record>> workers;
  std::vector<pool_scheduler::worker_id> to_fork;
  std::vector<std::uint64_t> cancel_later;
  bool fork_posted = false;
  bool fork_failed = false;
  bool finished = false;
  bool timeout_armed = false;
  // What an imap with window 0 keeps in flight: twice what the scheduler sends ahead to each
  // worker, at least four per worker (updated as the tasks' mean run time is measured).
  std::atomic<std::size_t> stream_window{0};
  bool watching = false;     // a wait on the pool's eventfd is pending
  bool poll_posted = false;  // a look at the answers is posted
  std::chrono::steady_clock::time_point polling_since{};
  std::uint64_t next_task = 1;
  asio::posix::stream_descriptor watch;  // the pool's eventfd, a fork exclusion
  asio::steady_timer timeout_timer;
  asio::steady_timer fork_retry;
  std::list<asio::any_completion_handler<void(error_code)>> joiners;
  std::condition_variable finished_cv;
  std::thread::id loop_thread;  // a pool's own loop
  // The worker whose end is being handled, for failure messages.
  int ending_pid = 0;
  std::optional<exit_status> ending_status;
  std::string initializer_problem;
  int stopping_pid = 0;

  ~pool_core() {
    const int fd = watch.release();
    if (fd >= 0) close_excluded(fd);
  }
};

// ----- the owners of tasks -----

// One task: an apply's, or a submitted handle's.
struct task_state : task_owner {
  std::weak_ptr<pool_core> core;
  std::uint64_t id = 0;
  asio::any_io_executor ex;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  std::string bytes;
  std::list<completion> waiters;  // stable nodes: never move-assigned (the Boost 1.81 trap)

  void finished(std::size_t, std::exception_ptr e, std::string_view b) override {
    std::list<completion> waiting;
    {
      std::lock_guard lock(mutex);
      done = true;
      error = e;
      bytes.assign(b);
      waiting.splice(waiting.end(), waiters);
    }
    cv.notify_all();
    for (auto& h : waiting) complete_clearing_slot(ex, std::move(h), error, bytes);
  }

  // Waits for the outcome; a cancellation of the wait runs `on_cancel` (stop waiting, or cancel
  // the task).
  template <typename OnCancel>
  void async_wait(completion handler, OnCancel on_cancel) {
    std::unique_lock lock(mutex);
    if (done) {
      lock.unlock();
      complete_clearing_slot(ex, std::move(handler), error, bytes);
      return;
    }
    auto slot = asio::get_associated_cancellation_slot(handler);
    waiters.push_back(std::move(handler));
    auto node = std::prev(waiters.end());
    if (slot.is_connected())
      slot.template emplace<std::function<void(asio::cancellation_type)>>(
          [this_state = this, node, on_cancel](asio::cancellation_type) mutable { on_cancel(this_state, node); });
  }
};

struct batch_state : task_owner {
  std::weak_ptr<pool_core> core;
  asio::any_io_executor ex;
  std::vector<std::uint64_t> ids;
  std::vector<std::string> results;
  std::size_t remaining = 0;
  std::exception_ptr error;
  bool done = false;
  std::optional<asio::any_completion_handler<void(std::exception_ptr, std::vector<std::string>)>> waiter;
  std::mutex mutex;
  std::condition_variable cv;

  void finished(std::size_t index, std::exception_ptr e, std::string_view b) override {
    std::optional<asio::any_completion_handler<void(std::exception_ptr, std::vector<std::string>)>> handler;
    {
      std::lock_guard lock(mutex);
      if (done) return;
      if (e) {
        error = e;
        done = true;
        // The rest is of no use: what has not started is dropped, what runs finishes (as
        // Python's map lets it).
        if (auto c = core.lock())
          for (const std::uint64_t id : ids) c->cancel_later.push_back(id);
      } else {
        results[index].assign(b);
        done = --remaining == 0;
      }
      if (done && waiter) {
        handler.emplace(std::move(*waiter));
        waiter.reset();
      }
    }
    if (done) cv.notify_all();
    if (handler) complete_clearing_slot(ex, std::move(*handler), error, std::move(results));
  }
};

struct stream_state : task_owner {
  struct entry {
    std::exception_ptr error;
    std::string bytes;
  };
  std::weak_ptr<pool_core> core;
  task_call call{};
  std::set<std::size_t> early;
  bool ordered = true;
  std::size_t window = 1;
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::size_t, std::uint64_t> ids;  // chunk index -> task id, while in flight
  std::map<std::size_t, entry> arrived;  // ordered: by chunk index
  std::deque<entry> arrival;             // unordered
  std::size_t fed = 0;
  std::size_t delivered = 0;
  std::size_t next_index = 0;
  bool input_done = false;
  bool cancelled = false;
  std::optional<asio::any_completion_handler<void(std::exception_ptr, std::string, bool)>> waiter;
  asio::any_io_executor waiter_ex;

  void finished(std::size_t index, std::exception_ptr e, std::string_view b) override {
    std::optional<asio::any_completion_handler<void(std::exception_ptr, std::string, bool)>> handler;
    entry taken;
    bool end = false;
    {
      std::lock_guard lock(mutex);
      if (ids.erase(index) == 0) early.insert(index);  // answered before stream_feed recorded its id
      if (cancelled) return;
      if (ordered)
        arrived.emplace(index, entry{e, std::string(b)});
      else
        arrival.push_back(entry{e, std::string(b)});
      if (waiter && take(taken, end)) {
        handler.emplace(std::move(*waiter));
        waiter.reset();
      }
    }
    cv.notify_all();
    if (handler) complete_clearing_slot(waiter_ex, std::move(*handler), taken.error, std::move(taken.bytes), end);
  }

  // The next result in the stream's order, or the end; false if neither is there yet.
  bool take(entry& out, bool& end) {
    if (ordered) {
      const auto at = arrived.find(next_index);
      if (at != arrived.end()) {
        out = std::move(at->second);
        arrived.erase(at);
        ++next_index;
        ++delivered;
        return true;
      }
    } else if (!arrival.empty()) {
      out = std::move(arrival.front());
      arrival.pop_front();
      ++delivered;
      return true;
    }
    if (input_done && delivered == fed) {
      end = true;
      return true;
    }
    return false;
  }
};

// ----- the erased operations of herd/pool.hpp -----

std::size_t pool_size(const pool_core& core) noexcept { return core.processes; }

void check_blocking_allowed(const pool_core& core, const char* call) {
  bool on_loop = false;
  if (core.loop_thread != std::thread::id())
    on_loop = std::this_thread::get_id() == core.loop_thread;
  else if (const auto* io = core.ex.target<asio::io_context::executor_type>())
    on_loop = io->running_in_this_thread();
  else if (const auto* strand = core.ex.target<asio::strand<asio::io_context::executor_type>>())
    on_loop = strand->get_inner_executor().running_in_this_thread();
  if (on_loop)
    throw boost::system::system_error(
        errc::invalid_argument, std::string("herd: pool::") + call +
                                    " blocks, and was called on a thread running the pool's event loop, which it "
                                    "would stop forever; co_await the async_ form instead");
}

void throw_empty_pool() {
  throw boost::system::system_error(errc::not_running, "herd: the pool or task handle is empty (moved from)");
}

std::shared_ptr<task_state> pool_submit(const std::shared_ptr<pool_core>& core, const task_call& call, std::string args) {
  auto state = std::make_shared<task_state>();
  state->core = core;
  state->ex = core->ex;
  state->id = core->submit(call, std::move(args), state, 0);
  return state;
}

void pool_async_apply(const std::shared_ptr<pool_core>& core, const task_call& call, std::string args,
                      completion handler) {
  std::shared_ptr<task_state> state;
  try {
    state = pool_submit(core, call, std::move(args));
  } catch (...) {
    complete_clearing_slot(core->ex, std::move(handler), std::current_exception(), std::string());
    return;
  }
  // Cancelling the await cancels the task; its failure then completes the wait.
  state->async_wait(std::move(handler), [keep = state](task_state* s, std::list<completion>::iterator) {
    if (auto c = s->core.lock()) c->cancel(s->id);
  });
}

void task_async_get(const std::shared_ptr<task_state>& state, completion handler) {
  // Cancelling only stops this wait.
  state->async_wait(std::move(handler), [keep = state](task_state* s, std::list<completion>::iterator node) {
    std::optional<completion> h;
    {
      std::lock_guard lock(s->mutex);
      if (s->done) return;  // completing already
      h.emplace(std::move(*node));
      s->waiters.erase(node);
    }
    complete_clearing_slot(s->ex, std::move(*h),
                           std::make_exception_ptr(boost::system::system_error(
                               asio::error::operation_aborted, "herd: pool_task::async_get: the wait was cancelled")),
                           std::string());
  });
}

bool task_wait(task_state& state, std::optional<std::chrono::milliseconds> timeout) {
  if (auto core = state.core.lock()) check_blocking_allowed(*core, "get");
  std::unique_lock lock(state.mutex);
  if (!timeout) {
    state.cv.wait(lock, [&] { return state.done; });
    return true;
  }
  return state.cv.wait_for(lock, *timeout, [&] { return state.done; });
}

std::exception_ptr task_outcome(const task_state& state, std::string& bytes) {
  auto& s = const_cast<task_state&>(state);
  std::lock_guard lock(s.mutex);
  bytes = s.bytes;
  return s.error;
}

bool task_ready(const task_state& state) noexcept {
  auto& s = const_cast<task_state&>(state);
  std::lock_guard lock(s.mutex);
  return s.done;
}

bool task_cancel(const std::shared_ptr<task_state>& state) {
  if (task_ready(*state)) return false;
  if (auto core = state->core.lock()) core->cancel(state->id);
  return true;
}

namespace {

std::shared_ptr<batch_state> start_batch(const std::shared_ptr<pool_core>& core, const task_call& call,
                                         std::vector<std::string> chunks) {
  auto state = std::make_shared<batch_state>();
  state->core = core;
  state->ex = core->ex;
  state->results.resize(chunks.size());
  state->remaining = chunks.size();
  state->ids.reserve(chunks.size());
  if (chunks.empty()) {
    state->done = true;
    return state;
  }
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const std::uint64_t id = core->submit(call, std::move(chunks[i]), state, i);
    std::lock_guard lock(state->mutex);
    state->ids.push_back(id);
  }
  return state;
}

}  // namespace

void pool_async_batch(const std::shared_ptr<pool_core>& core, const task_call& call, std::vector<std::string> chunks,
                      asio::any_completion_handler<void(std::exception_ptr, std::vector<std::string>)> handler) {
  std::shared_ptr<batch_state> state;
  try {
    state = start_batch(core, call, std::move(chunks));
  } catch (...) {
    complete_clearing_slot(core->ex, std::move(handler), std::current_exception(), std::vector<std::string>());
    return;
  }
  std::unique_lock lock(state->mutex);
  if (state->done) {
    lock.unlock();
    complete_clearing_slot(core->ex, std::move(handler), state->error, std::move(state->results));
    return;
  }
  // The slot is set before the waiter can be completed (under the state's lock): a completion
  // clears it on the handler's executor.
  auto slot = asio::get_associated_cancellation_slot(handler);
  if (slot.is_connected())
    slot.emplace<std::function<void(asio::cancellation_type)>>([state](asio::cancellation_type) {
      std::vector<std::uint64_t> ids;
      {
        std::lock_guard l(state->mutex);
        ids = state->ids;
      }
      if (auto c = state->core.lock())
        for (const std::uint64_t id : ids) c->cancel(id);
    });
  state->waiter.emplace(std::move(handler));
}

std::exception_ptr pool_batch(const std::shared_ptr<pool_core>& core, const task_call& call,
                              std::vector<std::string> chunks, std::vector<std::string>& results) {
  auto state = start_batch(core, call, std::move(chunks));
  std::unique_lock lock(state->mutex);
  state->cv.wait(lock, [&] { return state->done; });
  results = std::move(state->results);
  return state->error;
}

std::shared_ptr<stream_state> pool_stream(const std::shared_ptr<pool_core>& core, const task_call& call, bool ordered,
                                          std::size_t window) {
  auto state = std::make_shared<stream_state>();
  state->core = core;
  state->ordered = ordered;
  state->window = window;  // 0: as the pool suggests
  state->waiter_ex = core->ex;
  state->call = call;
  return state;
}

bool stream_has_room(const stream_state& state) noexcept {
  auto& s = const_cast<stream_state&>(state);
  std::lock_guard lock(s.mutex);
  // Results waiting to be read count too: a slow reader holds the input back. The pool's
  // suggestion keeps every worker busy with what the scheduler sends ahead, and more ready.
  std::size_t window = s.window;
  if (window == 0) {
    const auto core = s.core.lock();
    window = core ? core->stream_window.load(std::memory_order_relaxed) : 1;
  }
  return s.fed - s.delivered < window && !s.cancelled;
}

void stream_feed(const std::shared_ptr<stream_state>& state, std::string chunk) {
  const auto core = state->core.lock();
  if (!core) throw_empty_pool();
  std::size_t index;
  {
    std::lock_guard lock(state->mutex);
    index = state->fed++;
  }
  std::uint64_t id;
  try {
    id = core->submit(state->call, std::move(chunk), state, index);
  } catch (...) {
    state->finished(index, std::current_exception(), {});  // in its place, like any failure
    return;
  }
  std::lock_guard lock(state->mutex);
  if (state->early.erase(index) == 0) state->ids.emplace(index, id);
}

void stream_input_done(stream_state& state) noexcept {
  std::lock_guard lock(state.mutex);
  state.input_done = true;
}

void stream_async_next(const std::shared_ptr<stream_state>& state,
                       asio::any_completion_handler<void(std::exception_ptr, std::string, bool)> handler) {
  std::unique_lock lock(state->mutex);
  stream_state::entry taken;
  bool end = false;
  if (state->take(taken, end)) {
    lock.unlock();
    complete_clearing_slot(state->waiter_ex, std::move(handler), taken.error, std::move(taken.bytes), end);
    return;
  }
  if (state->waiter) {
    lock.unlock();
    complete_clearing_slot(state->waiter_ex, std::move(handler),
                           std::make_exception_ptr(boost::system::system_error(
                               errc::invalid_argument, "herd: imap_stream::async_next: another read is waiting")),
                           std::string(), false);
    return;
  }
  auto slot = asio::get_associated_cancellation_slot(handler);
  if (slot.is_connected())
    slot.emplace<std::function<void(asio::cancellation_type)>>([state](asio::cancellation_type) {
      std::optional<asio::any_completion_handler<void(std::exception_ptr, std::string, bool)>> h;
      {
        std::lock_guard l(state->mutex);
        if (!state->waiter) return;
        h.emplace(std::move(*state->waiter));
        state->waiter.reset();
      }
      complete_clearing_slot(state->waiter_ex, std::move(*h),
                             std::make_exception_ptr(boost::system::system_error(
                                 asio::error::operation_aborted, "herd: imap_stream::async_next: the wait was cancelled")),
                             std::string(), false);
    });
  state->waiter.emplace(std::move(handler));
}

bool stream_next(stream_state& state, std::optional<std::chrono::milliseconds> timeout, std::exception_ptr& error,
                 std::string& bytes, bool& end) {
  if (auto core = state.core.lock()) check_blocking_allowed(*core, "imap_stream::next");
  std::unique_lock lock(state.mutex);
  stream_state::entry taken;
  const auto ready = [&] { return state.take(taken, end); };
  if (!timeout)
    state.cv.wait(lock, ready);
  else if (!state.cv.wait_for(lock, *timeout, ready))
    return false;
  error = taken.error;
  bytes = std::move(taken.bytes);
  return true;
}

void stream_cancel(const std::shared_ptr<stream_state>& state) {
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(state->mutex);
    state->cancelled = true;
    for (const auto& [index, id] : state->ids) ids.push_back(id);
  }
  if (auto core = state->core.lock())
    for (const std::uint64_t id : ids) core->cancel(id, false);
}

namespace {

// close() or terminate(): the scheduler decides, the core carries it out.
void pool_stop(pool_core& core, void (pool_scheduler::*stop)(pool_scheduler::actions&)) {
  std::unique_lock lock(core.mutex);
  pool_scheduler::actions out;
  (core.scheduler.*stop)(out);
  core.carry_out(out);
  core.finish_locked(lock);
}

}  // namespace

void pool_close(pool_core& core) { pool_stop(core, &pool_scheduler::close); }

void pool_terminate(pool_core& core) { pool_stop(core, &pool_scheduler::terminate); }

void pool_async_join(const std::shared_ptr<pool_core>& core, const asio::any_io_executor& ex,
                     asio::any_completion_handler<void(error_code)> handler) {
  if (!core) {
    post_completion(ex, std::move(handler), make_error_code(errc::not_running));
    return;
  }
  std::unique_lock lock(core->mutex);
  if (!core->scheduler.closed()) {
    lock.unlock();
    post_completion(core->ex, std::move(handler), make_error_code(errc::invalid_argument));
    return;
  }
  if (core->finished) {
    lock.unlock();
    post_completion(core->ex, std::move(handler), error_code());
    return;
  }
  // Cancelling stops this wait only; the slot is set under the lock, before a completion can clear it.
  auto slot = asio::get_associated_cancellation_slot(handler);
  core->joiners.push_back(std::move(handler));
  if (slot.is_connected()) {
    const auto node = std::prev(core->joiners.end());
    slot.emplace<std::function<void(asio::cancellation_type)>>(
        [weak = std::weak_ptr<pool_core>(core), node](asio::cancellation_type) {
          const auto c = weak.lock();
          if (!c) return;
          std::unique_lock l(c->mutex);
          if (c->finished) return;  // its completion is on its way
          asio::any_completion_handler<void(error_code)> h(std::move(*node));
          c->joiners.erase(node);
          l.unlock();
          complete_clearing_slot(c->ex, std::move(h), error_code(asio::error::operation_aborted));
        });
  }
}

void pool_join(pool_core& core) {
  check_blocking_allowed(core, "join");
  std::unique_lock lock(core.mutex);
  if (!core.scheduler.closed())
    throw boost::system::system_error(errc::invalid_argument,
                                      "herd: pool::join: call close() or terminate() first (as in Python)");
  core.finished_cv.wait(lock, [&] { return core.finished; });
}

pool_stats pool_get_stats(const pool_core& core) {
  auto& c = const_cast<pool_core&>(core);
  std::lock_guard lock(c.mutex);
  const auto counters = c.scheduler.counters();
  pool_stats s;
  s.processes = c.processes;
  s.queued = counters.queued;
  s.running = counters.running;
  s.done = counters.done;
  s.failed = counters.failed;
  s.retried = counters.retried;
  s.worker_restarts = counters.worker_restarts;
  for (const auto& w : c.scheduler.workers()) {
    const auto found = c.workers.find(w.id);
    const int pid = found != c.workers.end() && found->second->process ? found->second->process->pid : 0;
    s.workers.push_back({pid, w.done, w.holding});
  }
  return s;
}

}  // namespace detail

// ----- herd::pool -----

pool::pool(const executor_type& ex, const pool_options& options) : executor_(ex) {
  detail::pool_core::validate(options);
  auto core = std::make_shared<detail::pool_core>(ex, options, std::thread::id());
  core->start();
  core_ = std::move(core);
}

pool::pool(const pool_options& options)
    : loop_((detail::pool_core::validate(options), std::make_unique<detail::owned_loop>())) {
  executor_ = loop_->io.get_executor();
  auto core = std::make_shared<detail::pool_core>(executor_, options, loop_->thread.get_id());
  // Workers are forked on the loop's thread, which lives as long as the pool: PR_SET_PDEATHSIG
  // follows the thread that forked.
  std::promise<void> started;
  asio::post(executor_, [&] {
    try {
      core->start();
      started.set_value();
    } catch (...) {
      started.set_exception(std::current_exception());
    }
  });
  started.get_future().get();
  core_ = std::move(core);
}

pool::pool(pool&& other) noexcept
    : loop_(std::move(other.loop_)), core_(std::move(other.core_)), executor_(other.executor_) {
  // A moved-from pool keeps an executor that lives on: not the loop that moved away with this one.
  if (loop_) other.executor_ = asio::system_executor();
}

pool& pool::operator=(pool&& other) noexcept {
  if (this != &other) {
    shut_down();
    loop_ = std::move(other.loop_);
    core_ = std::move(other.core_);
    executor_ = other.executor_;
    if (loop_) other.executor_ = asio::system_executor();
  }
  return *this;
}

pool::~pool() { shut_down(); }

void pool::shut_down() noexcept {
  if (core_) {
    try {
      detail::pool_terminate(*core_);
    } catch (...) {
    }
    if (loop_ && loop_->thread.get_id() == std::this_thread::get_id()) {
      // Destroyed by a handler on its own loop, which cannot wait for itself: the loop goes on
      // until the workers have ended and been reaped, then ends and frees itself.
      detail::owned_loop* loop = loop_.release();
      loop->ends_by_itself = true;
      detail::pool_async_join(core_, loop->io.get_executor(), [loop](error_code) { loop->work.reset(); });
      core_.reset();
      return;
    }
    if (loop_) {
      // Its own loop reaps the workers; it stops only once they have ended.
      std::unique_lock lock(core_->mutex);
      core_->finished_cv.wait(lock, [&] { return core_->finished; });
    }
    core_.reset();
  }
  loop_.reset();
}

pool::executor_type pool::get_executor() const { return executor_; }

std::size_t pool::size() const { return detail::pool_size(*checked()); }

void pool::close() {
  if (core_) detail::pool_close(*core_);
}

void pool::terminate() {
  if (core_) detail::pool_terminate(*core_);
}

void pool::join() { detail::pool_join(*checked()); }

pool_stats pool::stats() const { return detail::pool_get_stats(*checked()); }

}  // namespace herd
