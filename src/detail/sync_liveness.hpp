// What herd's synchronization primitives need to tell which processes hold or wait on them: this
// process's pid as a lock word holds it, and a rate limit on looks at other processes (kill, /proc),
// which cost system calls.
#pragma once

#include "fork_lock.hpp"
#include "sync_steps.hpp"

#include <atomic>
#include <cstdint>

namespace herd::detail {

/// This process's pid, as lock words and waiter slots record it.
inline std::uint32_t self() noexcept { return static_cast<std::uint32_t>(current_pid()); }

/// True at most once per owner_check for `next` (this process's, not shared): a costly look at
/// other processes may be made.
inline bool look_due(std::atomic<deadline_clock::rep>& next) noexcept {
  const auto now = deadline_clock::now().time_since_epoch().count();
  const auto period = std::chrono::duration_cast<deadline_clock::duration>(owner_check).count();
  auto due = next.load(std::memory_order_relaxed);
  return now >= due && next.compare_exchange_strong(due, now + period);
}

}  // namespace herd::detail
