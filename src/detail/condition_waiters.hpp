// A condition's waiters, in its shared memory: the tickets and counts that say who may take a
// wake-up (decided in sync_steps.hpp), and the table of waiter slots through which waiters whose
// process died, or whose wait went with its event loop, are taken out of the counts. The caller
// (sync_core) holds the condition's lock where said, and does the sleeping and the waking.
#pragma once

#include "sync_steps.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace herd::detail {

inline constexpr std::uint32_t no_slot = UINT32_MAX;
inline constexpr std::uint32_t waiter_slots = 1024;  // waits tracked at a time; those beyond are counted only

/// The counts (see sync_steps.hpp), in the condition's shared_state. 64-bit tickets never wrap.
struct condition_counts {
  std::atomic<std::uint64_t> next_ticket;
  std::atomic<std::uint32_t> waiting;  // waiters not notified, not gone
  // Low half: notify(n) wake-ups not yet claimed… (by tickets before grant_limit). High half: the
  // waiters that may claim one (tickets from all_upto to grant_limit, no wake-up taken, not gone).
  std::atomic<std::uint64_t> grants;
  std::atomic<std::uint64_t> grant_limit;  // …by tickets before this
  std::atomic<std::uint64_t> all_upto;     // notify_all(): every ticket before this is woken
  std::atomic<std::uint32_t> slots_used;   // waiter slots ever used (the table's high-water mark)
};

// The table, after the condition's shared_state in the same mapping; its pages are only touched
// (so only take memory) as far as waits have used it.
struct waiter_slot {
  std::atomic<std::uint64_t> ticket;
  std::atomic<std::uint32_t> owner;  // 0, or pid | claiming_bit | abandoned_bit (sync_steps.hpp)
};
struct waiter_table {
  waiter_slot slot[waiter_slots];
};

class condition_waiters {
 public:
  condition_waiters(condition_counts& counts, waiter_table& table) noexcept : counts_(counts), slots_(table.slot) {}

  /// Registers a waiter (the caller holds the lock); `slot` is its place in the table, or no_slot.
  std::uint64_t take_ticket(std::uint32_t& slot) noexcept;

  /// True if `ticket` has been woken (by notify_all, or a notify whose wake-up it claims now).
  bool claim(std::uint64_t ticket, std::uint32_t slot) noexcept;

  /// After taking the lock again: a waiter that was not woken leaves; its slot is free again.
  /// True if it was woken.
  bool finish_wait(std::uint64_t ticket, std::uint32_t slot, bool woken) noexcept;

  /// A wait that goes with its event loop, without the lock: if it was woken, its slot is free
  /// again; else the slot is marked abandoned, and the next sweep under the lock accounts for it
  /// as for a dead waiter. Without a slot it leaves now.
  void abandon_wait(std::uint64_t ticket, std::uint32_t slot, bool woken) noexcept;

  /// Grants the wake-ups of notify(count), or of notify_all (the lock held). True if there were
  /// waiters to grant them to: the caller bumps the generation and wakes every sleeper, each of
  /// which looks whether it may claim one.
  bool notify(std::size_t count, bool all) noexcept;

 private:
  std::uint32_t take_slot(std::uint64_t ticket) noexcept;
  void leave(std::uint64_t ticket) noexcept;
  void reclaim(bool lingering, bool zombies) noexcept;

  condition_counts& counts_;
  waiter_slot* slots_;
  std::atomic<deadline_clock::rep> next_waiter_check_{0};  // looks at waiters' processes: this process's
};

}  // namespace herd::detail
