// Waiting on 32-bit words in shared memory: futexes for blocking waits, and one thread per process
// that waits on behalf of asynchronous operations (futex_waitv) and posts their continuations.
// herd's locks, semaphores, events, conditions and barriers are built on these two calls.
#pragma once

#include <herd/config.hpp>
#include <herd/detail/deadline.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include <sched.h>

namespace herd::detail {

/// Sleeps while `*word == expected` (shared futex: any process mapping the word can wake it),
/// until woken, `deadline`, or a signal. False once `deadline` has passed; true otherwise
/// (including spurious wake-ups and a word that had already changed): callers look again.
bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, deadline deadline) noexcept;
/// Wakes up to `count` waiters of `word`, in any process.
void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;

/// Asks this process's waiter thread to post `resume(error_code())` to `ex` once `*word` may no
/// longer equal `expected` — it was woken, or it changed — or at `recheck`. Spurious calls
/// happen: the operation looks again. The wait's id (for cancel_async_wait) is stored in `id`
/// before the wait can be resumed.
void async_futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      deadline recheck, const asio::any_io_executor& ex,
                      asio::any_completion_handler<void(error_code)> resume, std::atomic<std::uint64_t>& id);
/// If the wait is still pending, forgets it and posts its `resume(operation_aborted)`; false if
/// it had already been resumed.
bool cancel_async_wait(std::uint64_t id) noexcept;

/// Busy-waits briefly for `done()` (a CPU pause between looks) before a caller sleeps: handing
/// a lock between processes on a VM costs ~20 µs per sleep and wake-up, and most critical
/// sections are far shorter. `yielding`: the CPU is offered to others between rounds of looks,
/// for a wait whose other side may run on this very CPU (a pool's worker and its parent: without
/// it, a round trip of 58 µs instead of 4 was measured).
template <typename Done>
bool spin_until(Done&& done, std::chrono::nanoseconds budget = std::chrono::microseconds(20), bool yielding = false) {
  const auto until = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    if (yielding) ::sched_yield();
  }
}

}  // namespace herd::detail
