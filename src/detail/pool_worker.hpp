// A pool worker's side: the loop a worker process runs, whatever started it (a fork today; the
// start methods will hand it the same descriptors). It maps its link, runs the initializer, then
// takes tasks from its inbox, runs them and sends their results, until the pool tells it to quit
// or its quota of tasks is done.
#pragma once

#include <cstddef>
#include <functional>

namespace herd::detail {

/// What a worker is given: its link's memfd, its own wake-up eventfd, the pool's, the ring size,
/// how many tasks it runs before it leaves (0: no limit), how many coroutine tasks at once.
struct worker_start {
  int memory = -1;
  int wake_me = -1;
  int wake_parent = -1;
  std::size_t ring_capacity = 0;
  std::size_t quota = 0;
  std::size_t concurrency = 1;  // coroutine tasks it runs at once
};

/// Runs the worker until it is told to quit or its quota is done; an initializer's exception
/// escapes (the worker's outcome then says why, and the pool fails with initializer_failed).
void run_pool_worker(const worker_start& start, const std::function<void()>& initializer);

}  // namespace herd::detail
