#include "pool_scheduler.hpp"

#include <algorithm>

namespace herd::detail {

pool_scheduler::pool_scheduler(const pool_limits& limits) : limits_(limits), random_state_(limits.seed) {
  limits_.processes = std::max<std::size_t>(limits_.processes, 1);
  limits_.concurrency = std::max<std::size_t>(limits_.concurrency, 1);
  limits_.max_window = std::max<std::size_t>(limits_.max_window, 1);
}

void pool_scheduler::start(actions& out) {
  while (needs_worker()) start_worker(out);
}

bool pool_scheduler::submit(task_id task, actions& out) {
  if (closed_) return false;
  tasks_.emplace(task, task_record{});
  if (broken_) {
    fail(task, failure::initializer_failed, out);
    return true;
  }
  queue_.push_back(task);
  dispatch(out);
  return true;
}

void pool_scheduler::result(worker_id worker, task_id task, std::chrono::nanoseconds run_time, bool failed,
                            actions& out) {
  const auto t = tasks_.find(task);
  if (t == tasks_.end() || t->second.worker != worker) return;  // answered after its worker was written off
  if (const auto w = workers_.find(worker); w != workers_.end()) {
    forget_held(w->second, task);
    ++w->second.done;
    w->second.busy_since = now_;
  }
  if (!t->second.abandoned) {
    ++stats_.done;
    if (failed) ++stats_.failed;
    const double ns = std::max(static_cast<double>(run_time.count()), 1.0);
    mean_run_ns_ = mean_run_ns_ == 0 ? ns : 0.875 * mean_run_ns_ + 0.125 * ns;
  }
  tasks_.erase(t);
  dispatch(out);
  if (closed_ || broken_) retire_idle(out);
}

void pool_scheduler::worker_ended(worker_id worker, ending how, std::span<const task_id> running, actions& out) {
  const auto found = workers_.find(worker);
  if (found == workers_.end()) return;
  worker_record w = std::move(found->second);
  workers_.erase(found);
  if (!w.leaving) --active_;
  const bool blameless = w.stopped || how == ending::exited;
  if (how == ending::initializer_failed) broken_ = true;
  if (how != ending::exited && !w.stopped && !closed_ && !broken_) ++stats_.worker_restarts;

  // What had not started runs elsewhere, in its order, before what is queued.
  std::vector<task_id> again;
  for (const task_id task : w.holding) {
    const auto t = tasks_.find(task);
    if (t == tasks_.end()) continue;
    task_record& record = t->second;
    record.worker.reset();
    if (record.abandoned) {
      tasks_.erase(t);
      continue;
    }
    const bool was_running = std::find(running.begin(), running.end(), task) != running.end();
    if (how == ending::initializer_failed) {
      fail(task, failure::initializer_failed, out);
    } else if (!was_running || blameless) {
      again.push_back(task);
    } else if (++record.deaths >= limits_.poison_after) {
      fail(task, failure::poison_task, out);
    } else if (record.retries < limits_.retries) {
      ++record.retries;
      ++stats_.retried;
      again.push_back(task);
    } else {
      fail(task, failure::worker_died, out);
    }
  }
  queue_.insert(queue_.begin(), again.begin(), again.end());

  if (broken_) {
    while (!queue_.empty()) {
      const task_id task = queue_.front();
      queue_.pop_front();
      fail(task, failure::initializer_failed, out);
    }
    // No task will run: workers leave once they have answered what they hold.
    for (auto& [id, other] : workers_)
      if (!other.retired && other.holding.empty()) {
        other.retired = true;
        if (!other.leaving) --active_;
        other.leaving = true;
        out.push_back({action::retire_worker, id});
      }
    return;
  }
  while (needs_worker()) start_worker(out);
  dispatch(out);
  if (closed_) retire_idle(out);
}

pool_scheduler::place pool_scheduler::cancel(task_id task, actions& out, worker_id* worker) {
  const auto t = tasks_.find(task);
  if (t == tasks_.end() || t->second.abandoned) return place::unknown;
  if (!t->second.worker) {
    if (const auto at = std::find(queue_.begin(), queue_.end(), task); at != queue_.end()) queue_.erase(at);
    fail(task, failure::aborted, out);
    return place::queued;
  }
  if (worker) *worker = *t->second.worker;
  return place::sent;
}

void pool_scheduler::withdrawn(task_id task, actions& out) {
  const auto t = tasks_.find(task);
  if (t == tasks_.end() || t->second.abandoned) return;
  t->second.abandoned = true;
  ++stats_.failed;
  out.push_back({action::fail, 0, task, failure::aborted});
}

void pool_scheduler::stop_running(worker_id worker, task_id task, failure why, actions& out) {
  const auto t = tasks_.find(task);
  if (t != tasks_.end() && !t->second.abandoned) {
    t->second.abandoned = true;  // the worker may still answer before it is stopped
    ++stats_.failed;
    out.push_back({action::fail, 0, task, why});
  }
  if (limits_.concurrency > 1) {
    out.push_back({action::cancel_running, worker, task});
    return;
  }
  stop_worker(worker, out);
}

void pool_scheduler::stop_worker(worker_id worker, actions& out) {
  const auto w = workers_.find(worker);
  if (w == workers_.end() || w->second.stopped) return;
  if (!w->second.leaving) --active_;
  w->second.leaving = true;
  w->second.stopped = true;
  out.push_back({action::stop_worker, worker});
  while (needs_worker()) start_worker(out);
  dispatch(out);
}

void pool_scheduler::close(actions& out) {
  if (closed_) return;
  closed_ = true;
  retire_idle(out);
}

void pool_scheduler::terminate(actions& out) {
  closed_ = true;
  while (!queue_.empty()) {
    const task_id task = queue_.front();
    queue_.pop_front();
    fail(task, failure::closed, out);
  }
  for (auto& [id, w] : workers_) {
    for (const task_id task : w.holding) {
      const auto t = tasks_.find(task);
      if (t == tasks_.end() || t->second.abandoned) continue;
      t->second.abandoned = true;
      ++stats_.failed;
      out.push_back({action::fail, 0, task, failure::aborted});
    }
    if (w.stopped) continue;
    if (!w.leaving) --active_;
    w.leaving = true;
    w.stopped = true;
    out.push_back({action::stop_worker, id});
  }
}

pool_scheduler::stats pool_scheduler::counters() const noexcept {
  stats s = stats_;
  s.queued = queue_.size();
  s.running = 0;
  for (const auto& [id, w] : workers_) s.running += w.holding.size();
  return s;
}

std::vector<pool_scheduler::worker_stats> pool_scheduler::workers() const {
  std::vector<worker_stats> all;
  all.reserve(workers_.size());
  for (const auto& [id, w] : workers_) all.push_back({id, w.done, w.holding.size()});
  std::sort(all.begin(), all.end(), [](const worker_stats& a, const worker_stats& b) { return a.id < b.id; });
  return all;
}

std::size_t pool_scheduler::window() const noexcept {
  std::size_t ahead = 1;
  if (mean_run_ns_ > 0) {
    const double fits = static_cast<double>(limits_.ahead.count()) / mean_run_ns_;
    ahead = fits >= static_cast<double>(limits_.max_window) ? limits_.max_window
                                                             : std::max<std::size_t>(1, static_cast<std::size_t>(fits));
  }
  return std::min(limits_.max_window, ahead * limits_.concurrency);
}

void pool_scheduler::dispatch(actions& out) {
  const std::size_t limit = window();
  while (!queue_.empty()) {
    // The least loaded worker that may take more; the lowest id among equals.
    worker_record* best = nullptr;
    worker_id best_id = 0;
    for (auto& [id, w] : workers_) {
      // A worker with a free place to run a task (concurrency) is not held up by a long one.
      if (w.leaving || w.holding.size() >= limit || (w.holding.size() >= limits_.concurrency && stalled(w))) continue;
      if (!best || w.holding.size() < best->holding.size() ||
          (w.holding.size() == best->holding.size() && id < best_id)) {
        best = &w;
        best_id = id;
      }
    }
    if (!best) return;
    const task_id task = queue_.front();
    queue_.pop_front();
    tasks_[task].worker = best_id;
    if (best->holding.empty()) best->busy_since = now_;
    best->holding.push_back(task);
    ++best->sent;
    out.push_back({action::send, best_id, task});
    if (best->quota != 0 && best->sent >= best->quota) {
      // It leaves by itself after this task; its replacement starts now, off the hot path.
      best->leaving = true;
      --active_;
      while (needs_worker()) start_worker(out);
    }
  }
}

bool pool_scheduler::stalled(const worker_record& w) const noexcept {
  // Far longer than the mean task: four times it, and at least a millisecond.
  const double limit = std::max(4 * mean_run_ns_, 1e6);
  return static_cast<double>((now_ - w.busy_since).count()) > limit;
}

void pool_scheduler::start_worker(actions& out) {
  const worker_id id = next_worker_++;
  worker_record& w = workers_[id];
  w.quota = draw_quota();
  ++active_;
  out.push_back({action::start_worker, id, 0, failure::worker_died, w.quota});
}

bool pool_scheduler::needs_worker() const noexcept {
  if (broken_ || active_ >= limits_.processes) return false;
  return !closed_ || !queue_.empty();
}

std::size_t pool_scheduler::draw_quota() {
  const std::size_t k = limits_.max_tasks_per_child;
  if (k == 0) return 0;
  // splitmix64: a fixed, seedable sequence.
  std::uint64_t z = (random_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return k - static_cast<std::size_t>(z % (k / 4 + 1));
}

void pool_scheduler::forget_held(worker_record& w, task_id task) {
  const auto at = std::find(w.holding.begin(), w.holding.end(), task);
  if (at != w.holding.end()) w.holding.erase(at);
}

void pool_scheduler::fail(task_id task, failure why, actions& out) {
  tasks_.erase(task);
  ++stats_.failed;
  out.push_back({action::fail, 0, task, why});
}

void pool_scheduler::retire_idle(actions& out) {
  if (!queue_.empty()) return;
  for (auto& [id, w] : workers_) {
    if (w.retired || w.stopped || !w.holding.empty()) continue;
    // A worker whose quota is all sent leaves by itself after it; no need to ask.
    if (w.leaving) continue;
    w.retired = true;
    w.leaving = true;
    --active_;
    out.push_back({action::retire_worker, id});
  }
}

}  // namespace herd::detail
