// While it waits, a condition's waiter holds a slot of the table (its pid and ticket), so that a
// waiter whose process died can be taken out of the counts: its wake-up, unused, would otherwise
// go to a waiter that arrives after the notify.
#include "condition_waiters.hpp"

#include "reap.hpp"
#include "sync_liveness.hpp"

#include <cerrno>
#include <iterator>
#include <signal.h>

namespace herd::detail {

std::uint64_t condition_waiters::take_ticket(std::uint32_t& slot) noexcept {
  counts_.waiting.fetch_add(1);
  const std::uint64_t ticket = counts_.next_ticket.fetch_add(1);
  slot = take_slot(ticket);
  return ticket;
}

// A free slot for `ticket` (the lock held). A full table is swept of dead waiters (at most once
// per owner_check); a waiter that still finds none is counted, not tracked.
std::uint32_t condition_waiters::take_slot(std::uint64_t ticket) noexcept {
  for (bool swept = false;; swept = true) {
    const std::uint32_t used = counts_.slots_used.load(std::memory_order_relaxed);
    std::uint32_t i = 0;
    while (i < used && slots_[i].owner.load(std::memory_order_acquire) != 0) ++i;
    if (i == waiter_slots) {
      if (swept || !look_due(next_waiter_check_)) return no_slot;
      reclaim(false, true);
      continue;
    }
    if (i == used) counts_.slots_used.store(used + 1, std::memory_order_relaxed);
    slots_[i].ticket.store(ticket, std::memory_order_relaxed);
    slots_[i].owner.store(self(), std::memory_order_release);
    return i;
  }
}

bool condition_waiters::claim(std::uint64_t ticket, std::uint32_t slot) noexcept {
  switch (standing_of(ticket, counts_.all_upto.load(), counts_.grant_limit.load())) {
    case waiter_standing::woken_by_notify_all: return true;
    case waiter_standing::waiting: return false;
    case waiter_standing::may_claim: break;
  }
  std::uint64_t v = counts_.grants.load();
  if (!grants_after_claim(v)) return false;
  // Marked before it takes one: a waiter killed between the two is then counted as having
  // taken it (at worst its wake-up is left over), never as not (a wake-up lost for the others).
  if (slot != no_slot) slots_[slot].owner.store(self() | claiming_bit, std::memory_order_release);
  while (const std::optional<std::uint64_t> claimed = grants_after_claim(v))
    if (counts_.grants.compare_exchange_weak(v, *claimed)) return true;
  if (slot != no_slot) slots_[slot].owner.store(self(), std::memory_order_release);
  return false;
}

// A waiter that was not woken, alive or dead, leaves the counts (the lock held, or racing a
// notify for an abandoned wait without a slot). If a notify came since it arrived, it may have
// been counted for a wake-up (grants_after_leaving says whether it takes one with it).
void condition_waiters::leave(std::uint64_t ticket) noexcept {
  const waiter_standing standing = standing_of(ticket, counts_.all_upto.load(), counts_.grant_limit.load());
  if (standing == waiter_standing::woken_by_notify_all) return;  // counted nowhere
  if (standing == waiter_standing::may_claim) {
    std::uint64_t v = counts_.grants.load();
    leaving_grants left = grants_after_leaving(v);
    while (!counts_.grants.compare_exchange_weak(v, left.grants)) left = grants_after_leaving(v);
    if (left.took_grant) return;
  }
  std::uint32_t w = counts_.waiting.load();
  while (w > 0 && !counts_.waiting.compare_exchange_weak(w, waiting_after_leaving(w))) {
  }
}

bool condition_waiters::finish_wait(std::uint64_t ticket, std::uint32_t slot, bool woken) noexcept {
  if (!woken) woken = claim(ticket, slot);
  if (!woken) leave(ticket);
  if (slot != no_slot) slots_[slot].owner.store(0, std::memory_order_release);
  return woken;
}

void condition_waiters::abandon_wait(std::uint64_t ticket, std::uint32_t slot, bool woken) noexcept {
  if (slot == no_slot) {
    if (!woken) leave(ticket);
    return;
  }
  slots_[slot].owner.store(woken ? 0 : self() | abandoned_bit, std::memory_order_release);
}

// Takes the waiters whose process is gone, and abandoned waits, out of the counts (the lock
// held). `lingering` (a notify, with wake-ups of earlier ones not all claimed): only waiters
// that may claim one are looked at, until as many live ones are seen as there are wake-ups
// left. Else every slot (a full table). A waiter that died while claiming is taken as having
// claimed. A look at another process is kill(pid, 0) — a reaped one is seen at once — and, at
// most once per owner_check per condition and process unless `zombies`, /proc for a zombie.
void condition_waiters::reclaim(bool lingering, bool zombies) noexcept {
  const std::uint32_t used = counts_.slots_used.load(std::memory_order_relaxed);
  const std::uint64_t all_upto = counts_.all_upto.load(), grant_limit = counts_.grant_limit.load();
  std::uint64_t live = 0;
  if (lingering && lingering_sweep_done(live, counts_.grants.load())) return;
  struct look {
    std::uint32_t pid;
    bool gone;
  };
  look looked[16];
  std::size_t n_looked = 0;
  bool zombies_asked = zombies;
  auto may_look_for_zombies = [&] {
    if (!zombies_asked) {
      zombies_asked = true;
      zombies = look_due(next_waiter_check_);
    }
    return zombies;
  };
  auto gone = [&](std::uint32_t pid) {
    if (pid == self()) return false;
    for (std::size_t k = 0; k < n_looked; ++k)
      if (looked[k].pid == pid) return looked[k].gone;
    bool result = ::kill(static_cast<int>(pid), 0) != 0 && errno == ESRCH;
    if (!result && may_look_for_zombies()) result = process_gone(static_cast<int>(pid));
    if (n_looked < std::size(looked)) looked[n_looked++] = {pid, result};
    return result;
  };
  for (std::uint32_t i = 0; i < used; ++i) {
    waiter_slot& slot = slots_[i];
    const std::uint32_t owner = slot.owner.load(std::memory_order_acquire);
    const std::uint64_t ticket = slot.ticket.load(std::memory_order_relaxed);
    const slot_review review = review_slot(owner, ticket, lingering, all_upto, grant_limit);
    if (review == slot_review::skip) continue;
    if (review == slot_review::look_at_process && !gone(owner & pid_mask)) {
      if (lingering && lingering_sweep_done(++live, counts_.grants.load())) return;
      continue;
    }
    if (reclaimed_waiter_leaves_counts(owner)) leave(ticket);
    slot.owner.store(0, std::memory_order_release);
  }
}

bool condition_waiters::notify(std::size_t count, bool all) noexcept {
  if (counts_.waiting.load() == 0) return false;
  if (all) {
    counts_.waiting.store(0);
    counts_.grants.store(0);
    counts_.all_upto.store(counts_.next_ticket.load());
    return true;
  }
  if (count == 0) return false;
  if (notify_sweeps_first(counts_.grants.load())) reclaim(true, false);
  std::uint64_t v = counts_.grants.load();
  notify_grants granted;
  do {
    granted = grants_after_notify(count, counts_.waiting.load(), v);
    if (granted.woken == 0) return false;
  } while (!counts_.grants.compare_exchange_weak(v, granted.grants));
  counts_.waiting.fetch_sub(granted.woken);
  counts_.grant_limit.store(counts_.next_ticket.load());
  return true;
}

}  // namespace herd::detail
