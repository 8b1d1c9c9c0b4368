// The decisions of herd's synchronization primitives, apart from the shared memory they act on
// (sans-io, DESIGN §4): given the values read from a primitive's words, what the new values are,
// whether the caller has it or must wait, and whom a release wakes. No atomics, no system calls:
// the callers in src/sync.cpp, src/sync_async.cpp and detail/condition_waiters.cpp read the words,
// ask these, and do the compare-exchange and the futex call.
#pragma once

#include <herd/config.hpp>
#include <herd/detail/deadline.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace herd::detail {

// -- locks (lock, rlock, a condition's and a barrier's lock) ----------------------------------

// A lock word: the owner's pid, and a bit saying that someone may sleep on the word.
inline constexpr std::uint32_t waiters_bit = 0x80000000u;
inline constexpr std::uint32_t pid_mask = 0x3fffffffu;
// rlock: the owner tag of an awaitable acquisition (thread tags are thread ids, < 2^22).
inline constexpr std::uint32_t async_tag = 0xffffffffu;

/// The holder's pid, 0 if the lock is free.
constexpr std::uint32_t lock_owner(std::uint32_t word) noexcept { return word & pid_mask; }

/// The word once `self` takes the lock, or nullopt if it is held. A caller that has slept
/// (`contended`) sets the waiters bit whatever the word held: others may still sleep on it (the
/// release cleared the bit).
inline std::optional<std::uint32_t> word_after_taking(std::uint32_t word, std::uint32_t self, bool contended) noexcept {
  if (lock_owner(word) != 0) return std::nullopt;
  return self | (contended ? waiters_bit : word & waiters_bit);
}

/// The word a waiter sleeps on (the waiters bit set), or 0 if the lock is free: take it instead.
inline std::uint32_t word_to_sleep_on(std::uint32_t word) noexcept { return lock_owner(word) == 0 ? 0 : word | waiters_bit; }

/// A release of a lock whose word was `word` must wake one sleeper.
constexpr bool release_wakes_one(std::uint32_t word) noexcept { return (word & waiters_bit) != 0; }

/// Whether the holder recorded in `word` is worth a look (is it gone?): held, and not by `self`.
inline bool may_take_from_dead_owner(std::uint32_t word, std::uint32_t self) noexcept {
  const std::uint32_t owner = lock_owner(word);
  return owner != 0 && owner != self;
}

/// rlock: the calling thread (`tag`) holds it already and takes one level more. Awaitable
/// acquisitions (async_tag) never re-enter.
inline bool rlock_reenters(std::uint32_t word, std::uint32_t self, std::uint32_t owner_thread, std::uint32_t tag) noexcept {
  return tag != async_tag && lock_owner(word) == self && owner_thread == tag;
}

/// rlock: `tag` may release it: a thread's acquisition is its own; an awaitable one belongs to
/// the process.
inline bool rlock_release_allowed(std::uint32_t owner_thread, std::uint32_t tag) noexcept {
  return owner_thread == tag || owner_thread == async_tag;
}

/// rlock: after a release at recursion `depth`, the lock is still held (one level less).
constexpr bool rlock_still_held(std::uint32_t depth) noexcept { return depth > 1; }

// -- semaphores and events --------------------------------------------------------------------

/// A semaphore's bound: its initial value if bounded (a release above it is Python's
/// ValueError), else none.
constexpr std::uint32_t semaphore_maximum(bool bounded, std::uint32_t initial) noexcept {
  return bounded ? initial : UINT32_MAX;
}

/// The value once one unit is taken, or nullopt at 0: the caller must wait.
inline std::optional<std::uint32_t> value_after_taking(std::uint32_t value) noexcept {
  if (value == 0) return std::nullopt;
  return value - 1;
}

/// The value once one unit is given back, or nullopt at `maximum` (errc::invalid_argument).
inline std::optional<std::uint32_t> value_after_release(std::uint32_t value, std::uint32_t maximum) noexcept {
  if (value >= maximum) return std::nullopt;  // Python's ValueError
  return value + 1;
}

/// A release (semaphore) or a set (event) seeing `waiters` callers that may sleep wakes them.
constexpr bool release_wakes_sleepers(std::uint32_t waiters) noexcept { return waiters > 0; }

/// An event wait that looked at `seen` sets is over: set now, or set since (even if cleared
/// again), as with threading.Event.
constexpr bool event_wait_over(std::uint32_t flag, std::uint32_t generation, std::uint32_t seen) noexcept {
  return flag != 0 || generation != seen;
}

// -- deadlines --------------------------------------------------------------------------------

/// How often a waiter looks whether the holder of a lock (or a condition's waiter) still exists.
inline constexpr auto owner_check = std::chrono::milliseconds(100);

/// When a sleeper wakes up next: its deadline, or sooner, to look again for a holder that died
/// or a wake-up lost to a waiter that died or left.
inline deadline next_look(const deadline& deadline, deadline_clock::time_point now) noexcept {
  const deadline_clock::time_point recheck = now + owner_check;
  return deadline && *deadline < recheck ? deadline : recheck;
}


// -- barriers ---------------------------------------------------------------------------------

enum class barrier_outcome : std::uint8_t { broken, waits, trips };
struct barrier_arrival {
  barrier_outcome outcome;
  std::uint32_t index;  // this party's (0 to parties - 1); not for a broken barrier
};
/// A party arrives (the barrier's lock held) with `arrived` parties there before it: a broken
/// barrier refuses it, the last one trips the generation, the others wait.
inline barrier_arrival arrive_at_barrier(bool broken, std::uint32_t arrived, std::uint32_t parties) noexcept {
  if (broken) return {barrier_outcome::broken, 0};
  return {arrived + 1 >= parties ? barrier_outcome::trips : barrier_outcome::waits, arrived};
}

/// Which generations were broken: bit g % 64 for generation g (64 generations back suffice:
/// a waiter looks at its own as soon as it wakes).
constexpr std::uint64_t generation_bit(std::uint32_t generation) noexcept {
  return std::uint64_t(1) << (generation % 64);
}
constexpr bool generation_broken(std::uint64_t broken_generations, std::uint32_t generation) noexcept {
  return (broken_generations & generation_bit(generation)) != 0;
}
/// The broken-generation bits once generation `g` ends, broken or tripped; the next one starts
/// whole.
inline std::uint64_t broken_generations_after_end(std::uint64_t broken_generations, std::uint32_t g, bool broken) noexcept {
  if (broken) broken_generations |= generation_bit(g);
  return broken_generations & ~generation_bit(g + 1);
}

/// A wait in generation `g` that gave up (`reason`: timed out, cancelled) and broke it for
/// everyone — unless the last party came first, and `g` tripped: then it succeeded.
inline error_code barrier_give_up_result(std::uint64_t broken_generations, std::uint32_t g, error_code reason) noexcept {
  return generation_broken(broken_generations, g) ? reason : error_code();
}

// -- conditions -------------------------------------------------------------------------------
//
// Each waiter has a ticket, taken under the lock. `waiting` counts the waiters not granted a
// wake-up, `grants` the wake-ups granted and not claimed (low half) and the waiters that may
// claim one (high half: tickets before grant_limit, none taken). A waiter that has not been
// woken by notify_all and has not claimed is counted once in waiting + grants; there are never
// more grants than waiters that may claim them. One word for both halves, so that a dead
// waiter's share is taken from the one or the other atomically.

constexpr std::uint64_t grant_part(std::uint64_t grants) noexcept { return grants & 0xffffffffu; }
constexpr std::uint64_t eligible_part(std::uint64_t grants) noexcept { return grants >> 32; }
constexpr std::uint64_t grant_word(std::uint64_t granted, std::uint64_t eligible) noexcept {
  return eligible << 32 | granted;
}

/// Where the waiter with `ticket` stands: woken by notify_all (counted nowhere), among those that
/// may claim a wake-up of notify(n) (counted in grants' high half), or waiting (counted in
/// `waiting`).
enum class waiter_standing : std::uint8_t { woken_by_notify_all, may_claim, waiting };
inline waiter_standing standing_of(std::uint64_t ticket, std::uint64_t all_upto, std::uint64_t grant_limit) noexcept {
  if (ticket < all_upto) return waiter_standing::woken_by_notify_all;
  if (ticket < grant_limit) return waiter_standing::may_claim;
  return waiter_standing::waiting;
}

/// The grants word once a waiter that may claim takes a wake-up, or nullopt if none is left.
inline std::optional<std::uint64_t> grants_after_claim(std::uint64_t grants) noexcept {
  const std::uint64_t granted = grant_part(grants), eligible = eligible_part(grants);
  if (granted == 0) return std::nullopt;
  return grant_word(granted - 1, eligible > 0 ? eligible - 1 : 0);
}

/// A waiter that may claim leaves without a wake-up (alive or dead): when there are as many
/// wake-ups as waiters that may claim one, one was for it and goes with it (`took_grant`); else
/// the others keep them all, and it leaves `waiting` instead.
struct leaving_grants {
  std::uint64_t grants;
  bool took_grant;
};
inline leaving_grants grants_after_leaving(std::uint64_t grants) noexcept {
  const std::uint64_t granted = grant_part(grants), eligible = eligible_part(grants);
  const bool had_grant = granted > 0 && granted >= eligible;
  return {grant_word(had_grant ? granted - 1 : granted, eligible > 0 ? eligible - 1 : 0), had_grant};
}

/// `waiting` once a waiter counted there leaves (never below 0).
constexpr std::uint32_t waiting_after_leaving(std::uint32_t waiting) noexcept { return waiting > 0 ? waiting - 1 : 0; }

/// notify(count) with `waiting` waiters not granted a wake-up: `woken` of them are granted one,
/// and every waiter counted may claim from now on (those waiting, and those granted one).
/// woken == 0: nothing changes.
struct notify_grants {
  std::uint32_t woken;
  std::uint64_t grants;
};
inline notify_grants grants_after_notify(std::size_t count, std::uint32_t waiting, std::uint64_t grants) noexcept {
  const auto woken = static_cast<std::uint32_t>(std::min<std::size_t>(count, waiting));
  if (woken == 0) return {0, grants};
  return {woken, grant_word(grant_part(grants) + woken, waiting + grant_part(grants))};
}

/// A notify must first take dead waiters out of the counts when wake-ups of earlier notifies
/// are not all claimed: this one lets every waiter claim, so wake-ups that dead waiters left
/// would go to waiters that came since, on top of this one's.
constexpr bool notify_sweeps_first(std::uint64_t grants) noexcept { return grant_part(grants) > 0; }

// A condition's waiter slot owner word (0 if free): the waiting process's pid, `claiming` while
// it takes a wake-up (kept once taken), `abandoned` when the wait went with its event loop without
// a wake-up (it is then accounted as a dead waiter is).
inline constexpr std::uint32_t claiming_bit = 0x40000000u;
inline constexpr std::uint32_t abandoned_bit = 0x80000000u;

/// What a sweep of the waiter table does with one slot. `lingering` (a notify, with wake-ups of
/// earlier ones not all claimed): only waiters that may claim one, and have not begun to, are
/// looked at. Else every occupied slot (a full table).
enum class slot_review : std::uint8_t { skip, look_at_process, reclaim };
inline slot_review review_slot(std::uint32_t owner, std::uint64_t ticket, bool lingering, std::uint64_t all_upto,
                        std::uint64_t grant_limit) noexcept {
  if (owner == 0) return slot_review::skip;
  if (lingering && ((owner & claiming_bit) || standing_of(ticket, all_upto, grant_limit) != waiter_standing::may_claim))
    return slot_review::skip;
  return owner & abandoned_bit ? slot_review::reclaim : slot_review::look_at_process;
}

/// A waiter taken out of the table (dead, or abandoned) leaves the counts unless it died while
/// claiming: it is then taken as having claimed (at worst its wake-up is left over, never lost).
constexpr bool reclaimed_waiter_leaves_counts(std::uint32_t owner) noexcept { return (owner & claiming_bit) == 0; }

/// A lingering sweep stops once it has seen as many live waiters that may claim as there are
/// wake-ups left (or none is left): those wake-ups will be claimed.
constexpr bool lingering_sweep_done(std::uint64_t live, std::uint64_t grants) noexcept {
  return live >= grant_part(grants);
}

}  // namespace herd::detail
