// A pool worker's side: the loop a worker process runs, whatever started it (a fork today; the
// start methods will hand it the same descriptors). It maps its link, runs the initializer, then
// takes tasks from its inbox, runs them and sends their results, until the pool tells it to quit
// or its quota of tasks is done.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace herd::detail {

class address_map;

/// What a worker is given: its link's memfd, its own wake-up eventfd, the pool's, the ring size,
/// how many tasks it runs before it leaves (0: no limit), how many coroutine tasks at once.
struct worker_start {
  int memory = -1;
  int wake_me = -1;
  int wake_parent = -1;
  std::size_t ring_capacity = 0;
  std::size_t quota = 0;
  std::size_t concurrency = 1;  // coroutine tasks it runs at once
  bool initializer = false;      // a spawned worker: the pool's initializer is in a memfd (descriptor 7)
  /// A spawned worker: the pool's code addresses, translated into this process's (null: the
  /// same address space, a fork).
  const address_map* addresses = nullptr;
};

/// What a spawned worker is told in its role (the descriptors are 4, 5 and 6, and 7 for an
/// initializer): the pool's pid, the worker's name, the ring size, quota, concurrency and
/// whether it has an initializer. Pure, both ways.
std::string spawned_worker_role(int parent, const std::string& name, const worker_start& start);
/// Reads it back; false if it is not one.
bool parse_spawned_worker_role(std::string_view role, int& parent, std::string& name, worker_start& start);

/// Runs the worker until it is told to quit or its quota is done; an initializer's exception
/// escapes (the worker's outcome then says why, and the pool fails with initializer_failed).
void run_pool_worker(const worker_start& start, const std::function<void()>& initializer);

}  // namespace herd::detail
