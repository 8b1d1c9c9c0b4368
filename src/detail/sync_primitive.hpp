// sync_core, the compiled primitive behind every handle of herd/sync.hpp: its state in a page of
// anonymous shared memory mapped before the children are forked, and the operations on it that
// both the blocking forms (src/sync.cpp) and the awaitable ones (src/sync_async.cpp) are made of.
// Every wait is a futex on a word of that page (detail/futex.hpp), so a wake-up is never lost and
// never stolen, and a cancelled wait leaves nothing behind. What the operations decide is in
// sync_steps.hpp; here they read and write the shared words and make the futex calls.
#pragma once

#include <herd/detail/deadline.hpp>
#include <herd/detail/sync_core.hpp>

#include "condition_waiters.hpp"
#include "sync_steps.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace herd::detail {

using atomic_word = std::atomic<std::uint32_t>;

struct shared_state {
  // lock, rlock; the lock of a condition and of a barrier
  atomic_word lock_word;
  atomic_word owner_thread;  // rlock: tag of the owning thread, or async_tag
  atomic_word depth;         // rlock: recursion depth
  // semaphores
  atomic_word value;
  atomic_word maximum;
  atomic_word waiters;  // semaphores and events: callers that may sleep
  // events, conditions, barriers
  atomic_word flag;        // event: set; barrier: broken
  atomic_word generation;  // event: sets; condition: notifies; barrier: trips and breaks
  condition_counts condition;
  // barriers
  atomic_word parties;
  atomic_word arrived;
  std::atomic<std::uint64_t> broken_generations;  // generation_bit(g): generation g was broken
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "barriers need address-free 64-bit atomics");

class sync_core {
 public:
  sync_core(sync_kind kind, std::uint32_t value);

  sync_kind kind() const noexcept { return kind_; }
  bool is_lock() const noexcept {
    return kind_ == sync_kind::lock || kind_ == sync_kind::rlock || kind_ == sync_kind::condition;
  }

  shared_state* s;

  // -- locks (`tag`: the calling thread's, or async_tag) ---------------------------------------
  bool take_if_free(std::uint32_t tag, bool contended = false) noexcept;
  void pass_on_wake() noexcept;
  bool take_from_dead_owner(std::uint32_t observed, std::uint32_t tag) noexcept;
  std::uint32_t announce_waiter() noexcept;
  error_code try_lock(std::uint32_t tag) noexcept;
  error_code lock(deadline deadline, bool block, std::uint32_t tag) noexcept;
  error_code unlock(std::uint32_t tag) noexcept;
  bool holds_lock() const noexcept;

  // -- semaphores and events -------------------------------------------------------------------
  bool take_unit() noexcept;
  error_code down(deadline deadline, bool block) noexcept;
  error_code up() noexcept;
  void set() noexcept;
  error_code wait_event(deadline deadline) noexcept;

  // -- conditions ------------------------------------------------------------------------------
  condition_waiters& waiters() noexcept { return *waiters_; }
  error_code wait_condition(deadline deadline) noexcept;
  error_code notify(std::size_t count, bool all) noexcept;

  // -- barriers --------------------------------------------------------------------------------
  std::uint32_t arrive(std::size_t& index, error_code& ec, bool& done) noexcept;
  error_code outcome_of(std::uint32_t g) noexcept;
  void break_barrier(std::uint32_t g, bool stay_broken) noexcept;
  error_code wait_barrier(deadline deadline, std::size_t& index) noexcept;
  void abort() noexcept;
  void reset() noexcept;

 private:
  void became_owner(std::uint32_t tag) noexcept;
  bool reenter(std::uint32_t tag) noexcept;
  void internal_lock() noexcept;
  void internal_unlock() noexcept;
  void end_generation(std::uint32_t g, bool broken) noexcept;

  sync_kind kind_;
  std::shared_ptr<void> memory_;
  std::optional<condition_waiters> waiters_;            // conditions
  std::atomic<deadline_clock::rep> next_owner_check_{0};    // this process's, not shared
};

}  // namespace herd::detail
