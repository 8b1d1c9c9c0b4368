// herd's synchronization primitives across processes. Each lives in a page of anonymous shared
// memory mapped before the children are forked; every wait is a futex on a word of that page
// (blocking waits in the caller, awaitable ones through this process's waiter thread, see
// detail/futex.hpp), so a wake-up is never lost and never stolen, and a cancelled wait leaves
// nothing behind. Uncontended acquires and releases are one atomic operation, no system call.
#include <herd/detail/sync_core.hpp>
#include <herd/sync.hpp>
#include <herd/error.hpp>

#include "detail/futex.hpp"
#include "detail/io.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <limits>
#include <string>
#include <iterator>
#include <new>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace herd::detail {
namespace {

using clock_type = std::chrono::steady_clock;
using atomic_word = std::atomic<std::uint32_t>;

// A lock word: the owner's pid, and a bit saying that someone may sleep on the word.
constexpr std::uint32_t waiters_bit = 0x80000000u;
constexpr std::uint32_t pid_mask = 0x3fffffffu;
// rlock: the owner tag of an awaitable acquisition (thread tags are thread ids, < 2^22).
constexpr std::uint32_t async_tag = 0xffffffffu;
// How often a waiter looks whether the holder of a lock still exists.
constexpr auto owner_check = std::chrono::milliseconds(100);

// A condition's waiter slot: its ticket, and the owner word (0 if free): the waiting process's
// pid, `claiming` while it takes a wake-up (kept once taken), `abandoned` when the wait went with
// its event loop without a wake-up (it is then accounted as a dead waiter is).
constexpr std::uint32_t claiming_bit = 0x40000000u;
constexpr std::uint32_t abandoned_bit = 0x80000000u;
constexpr std::uint32_t no_slot = UINT32_MAX;
constexpr std::uint32_t waiter_slots = 1024;  // waits tracked at a time; those beyond are counted only

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
  // conditions; 64-bit tickets never wrap
  std::atomic<std::uint64_t> next_ticket;
  atomic_word waiting;  // waiters not notified, not gone
  // Low half: notify(n) wake-ups not yet claimed… (by tickets before grant_limit). High half: the
  // waiters that may claim one (tickets from all_upto to grant_limit, no wake-up taken, not gone).
  // One word, so that a dead waiter's share is taken from the one or the other atomically.
  std::atomic<std::uint64_t> grants;
  std::atomic<std::uint64_t> grant_limit;  // …by tickets before this
  std::atomic<std::uint64_t> all_upto;     // notify_all(): every ticket before this is woken
  atomic_word slots_used;                  // waiter slots ever used (the table's high-water mark)
  // barriers
  atomic_word parties;
  atomic_word arrived;
  std::atomic<std::uint64_t> broken_generations;  // bit g % 64: generation g was broken
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "barriers need address-free 64-bit atomics");

// A condition's table of waiters, after its shared_state in the same mapping; its pages are only
// touched (so only take memory) as far as waits have used it.
struct waiter_slot {
  std::atomic<std::uint64_t> ticket;
  atomic_word owner;
};
struct waiter_table {
  waiter_slot slot[waiter_slots];
};
constexpr std::size_t table_offset =
    (sizeof(shared_state) + alignof(waiter_table) - 1) / alignof(waiter_table) * alignof(waiter_table);

constexpr std::uint64_t grant_part(std::uint64_t v) { return v & 0xffffffffu; }
constexpr std::uint64_t eligible_part(std::uint64_t v) { return v >> 32; }
constexpr std::uint64_t grant_word(std::uint64_t grants, std::uint64_t eligible) { return eligible << 32 | grants; }

// The calling thread's tag for rlock ownership: its thread id, refreshed after a fork.
std::uint32_t thread_tag() {
  thread_local int cached_pid = 0;
  thread_local std::uint32_t cached_tid = 0;
  if (cached_pid != current_pid()) {
    cached_tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
    cached_pid = current_pid();
  }
  return cached_tid;
}

std::uint32_t self() { return static_cast<std::uint32_t>(current_pid()); }

std::optional<clock_type::time_point> earlier(std::optional<clock_type::time_point> deadline,
                                              clock_type::time_point other) {
  return deadline && *deadline < other ? deadline : std::optional<clock_type::time_point>(other);
}

bool past(const std::optional<clock_type::time_point>& deadline) {
  return deadline && clock_type::now() >= *deadline;
}

}  // namespace

class sync_core {
 public:
  sync_core(sync_kind kind, std::uint32_t value)
      : kind_(kind),
        memory_(allocate_shared_memory(kind == sync_kind::condition ? table_offset + sizeof(waiter_table)
                                                                    : sizeof(shared_state))) {
    s = new (memory_.get()) shared_state{};
    if (kind == sync_kind::condition)
      slots_ = (new (static_cast<char*>(memory_.get()) + table_offset) waiter_table{})->slot;
    if (kind == sync_kind::semaphore || kind == sync_kind::bounded_semaphore) {
      s->value.store(value);
      s->maximum.store(kind == sync_kind::bounded_semaphore ? value : UINT32_MAX);
    }
    if (kind == sync_kind::barrier) s->parties.store(value);
  }

  sync_kind kind() const noexcept { return kind_; }
  bool is_lock() const noexcept {
    return kind_ == sync_kind::lock || kind_ == sync_kind::rlock || kind_ == sync_kind::condition;
  }

  shared_state* s;

  // -- locks ----------------------------------------------------------------------------------

  // Takes the lock word if it is free: true. A caller that has slept sets the waiters bit
  // whatever the word held: others may still sleep on it (the release cleared the bit).
  bool take_if_free(std::uint32_t tag, bool contended = false) noexcept {
    std::uint32_t v = s->lock_word.load(std::memory_order_relaxed);
    while ((v & pid_mask) == 0)
      if (s->lock_word.compare_exchange_weak(v, self() | (contended ? waiters_bit : v & waiters_bit),
                                             std::memory_order_acquire))
        return became_owner(tag), true;
    return false;
  }

  // A waiter that leaves without the lock (timed out, cancelled) may have taken the wake-up of
  // the last release: pass it on if the lock is free, else make sure the holder's release wakes
  // someone (its bit may have been cleared by that release).
  void pass_on_wake() noexcept {
    if (announce_waiter() == 0) futex_wake(s->lock_word, 1);
  }

  void became_owner(std::uint32_t tag) noexcept {
    if (kind_ == sync_kind::rlock) {
      s->owner_thread.store(tag, std::memory_order_relaxed);
      s->depth.store(1, std::memory_order_relaxed);
    }
  }

  // A lock held by this thread already (rlock, not for awaitable acquisitions): one level more.
  bool reenter(std::uint32_t tag) noexcept {
    if (kind_ != sync_kind::rlock || tag == async_tag) return false;
    if ((s->lock_word.load(std::memory_order_acquire) & pid_mask) != self()) return false;
    if (s->owner_thread.load(std::memory_order_relaxed) != tag) return false;
    s->depth.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // The holder recorded in `observed` no longer exists: take the lock from it (owner_died).
  // Looking costs system calls (kill, /proc): at most every owner_check per lock and process.
  bool take_from_dead_owner(std::uint32_t observed, std::uint32_t tag) noexcept {
    const std::uint32_t owner = observed & pid_mask;
    if (owner == 0 || owner == self() || !look_due(next_owner_check_)) return false;
    if (!process_gone(static_cast<int>(owner))) return false;
    if (!s->lock_word.compare_exchange_strong(observed, self() | waiters_bit, std::memory_order_acquire)) return false;
    became_owner(tag);
    return true;
  }

  // True at most once per owner_check for `next` (this process's): a costly look at other
  // processes may be made.
  static bool look_due(std::atomic<clock_type::rep>& next) noexcept {
    const auto now = clock_type::now().time_since_epoch().count();
    const auto period = std::chrono::duration_cast<clock_type::duration>(owner_check).count();
    auto due = next.load(std::memory_order_relaxed);
    return now >= due && next.compare_exchange_strong(due, now + period);
  }

  // Marks the word as slept on; returns the value to sleep on, or 0 if the lock became free.
  std::uint32_t announce_waiter() noexcept {
    std::uint32_t v = s->lock_word.load(std::memory_order_relaxed);
    for (;;) {
      if ((v & pid_mask) == 0) return 0;
      if (v & waiters_bit) return v;
      if (s->lock_word.compare_exchange_weak(v, v | waiters_bit, std::memory_order_relaxed)) return v | waiters_bit;
    }
  }

  // One attempt that never sleeps: success, owner_died or would_block.
  error_code try_lock(std::uint32_t tag) noexcept {
    if (reenter(tag) || take_if_free(tag)) return {};
    if (take_from_dead_owner(s->lock_word.load(std::memory_order_relaxed), tag)) return errc::owner_died;
    return errc::would_block;
  }

  error_code lock(sync_deadline deadline, bool block, std::uint32_t tag) noexcept {
    if (error_code ec = try_lock(tag); ec != errc::would_block || !block) return ec;
    if (spin_until([&] { return take_if_free(tag); })) return {};
    for (;;) {
      const std::uint32_t v = announce_waiter();
      if (v == 0) {
        if (take_if_free(tag, true)) return {};
        continue;
      }
      futex_wait(s->lock_word, v, earlier(deadline, clock_type::now() + owner_check));
      if (take_if_free(tag, true)) return {};
      if (take_from_dead_owner(s->lock_word.load(std::memory_order_relaxed), tag)) return errc::owner_died;
      if (past(deadline)) {
        pass_on_wake();
        return errc::timed_out;
      }
    }
  }

  error_code unlock(std::uint32_t tag) noexcept {
    if ((s->lock_word.load(std::memory_order_acquire) & pid_mask) != self()) return errc::not_owner;
    if (kind_ == sync_kind::rlock) {
      const std::uint32_t owner = s->owner_thread.load(std::memory_order_relaxed);
      // A thread's acquisition is its own; an awaitable one belongs to the process.
      if (owner != tag && owner != async_tag) return errc::not_owner;
      if (s->depth.fetch_sub(1, std::memory_order_relaxed) > 1) return {};
      s->owner_thread.store(0, std::memory_order_relaxed);
    }
    if (s->lock_word.exchange(0, std::memory_order_release) & waiters_bit) futex_wake(s->lock_word, 1);
    return {};
  }

  bool holds_lock() const noexcept { return (s->lock_word.load(std::memory_order_acquire) & pid_mask) == self(); }

  // -- semaphores -----------------------------------------------------------------------------

  // seq_cst, as the release's: a waiter counts itself, then looks; a release adds, then looks
  // for waiters; one of the two sees the other.
  bool take_unit() noexcept {
    std::uint32_t v = s->value.load();
    while (v > 0)
      if (s->value.compare_exchange_weak(v, v - 1)) return true;
    return false;
  }

  error_code down(sync_deadline deadline, bool block) noexcept {
    if (take_unit()) return {};
    if (!block) return errc::would_block;
    if (spin_until([&] { return take_unit(); })) return {};
    s->waiters.fetch_add(1);  // seq_cst with the release's load: one of us sees the other
    for (;;) {
      if (take_unit()) break;
      // The recheck bounds what a wake-up lost to a waiter that died or left costs.
      futex_wait(s->value, 0, earlier(deadline, clock_type::now() + owner_check));
      if (take_unit()) break;
      if (past(deadline)) {
        s->waiters.fetch_sub(1);
        return errc::timed_out;
      }
    }
    s->waiters.fetch_sub(1);
    return {};
  }

  error_code up() noexcept {
    std::uint32_t v = s->value.load(std::memory_order_relaxed);
    do {
      if (v >= s->maximum.load(std::memory_order_relaxed)) return errc::invalid_argument;  // Python's ValueError
    } while (!s->value.compare_exchange_weak(v, v + 1));
    if (s->waiters.load() > 0) futex_wake(s->value, 1);
    return {};
  }

  // -- events ---------------------------------------------------------------------------------

  void set() noexcept {
    s->flag.store(1);
    s->generation.fetch_add(1);
    if (s->waiters.load() > 0) futex_wake(s->generation, INT_MAX);
  }

  error_code wait_event(sync_deadline deadline) noexcept {
    const std::uint32_t seen = s->generation.load();
    if (s->flag.load()) return {};
    s->waiters.fetch_add(1);
    error_code result;
    // Set since we looked, even if cleared again: the wait is over, as with threading.Event.
    while (!s->flag.load() && s->generation.load() == seen) {
      if (!futex_wait(s->generation, seen, deadline) && !s->flag.load() && s->generation.load() == seen) {
        result = errc::timed_out;
        break;
      }
    }
    s->waiters.fetch_sub(1);
    return result;
  }

  // -- conditions -----------------------------------------------------------------------------
  //
  // Each waiter has a ticket, taken under the lock. `waiting` counts the waiters not granted a
  // wake-up, `grants` the wake-ups granted and not claimed (low half) and the waiters that may
  // claim one (high half: tickets before grant_limit, none taken). A waiter that has not been
  // woken by notify_all and has not claimed is counted once in waiting + grants; there are never
  // more grants than waiters that may claim them. While it waits, a waiter also holds a slot of
  // the table (its pid and ticket), so that a waiter whose process died can be taken out of the
  // counts: its wake-up, unused, would otherwise go to a waiter that arrives after the notify.

  // Registers a waiter (the caller holds the lock); `slot` is its place in the table, or no_slot.
  std::uint64_t take_ticket(std::uint32_t& slot) noexcept {
    s->waiting.fetch_add(1);
    const std::uint64_t ticket = s->next_ticket.fetch_add(1);
    slot = take_slot(ticket);
    return ticket;
  }

  // A free slot for `ticket` (the lock held). A full table is swept of dead waiters (at most once
  // per owner_check); a waiter that still finds none is counted, not tracked.
  std::uint32_t take_slot(std::uint64_t ticket) noexcept {
    for (bool swept = false;; swept = true) {
      const std::uint32_t used = s->slots_used.load(std::memory_order_relaxed);
      std::uint32_t i = 0;
      while (i < used && slots_[i].owner.load(std::memory_order_acquire) != 0) ++i;
      if (i == waiter_slots) {
        if (swept || !look_due(next_waiter_check_)) return no_slot;
        reclaim(false, true);
        continue;
      }
      if (i == used) s->slots_used.store(used + 1, std::memory_order_relaxed);
      slots_[i].ticket.store(ticket, std::memory_order_relaxed);
      slots_[i].owner.store(self(), std::memory_order_release);
      return i;
    }
  }

  // True if `ticket` has been woken (by notify_all, or a notify whose wake-up it claims now).
  bool claim(std::uint64_t ticket, std::uint32_t slot) noexcept {
    if (ticket < s->all_upto.load()) return true;
    if (ticket >= s->grant_limit.load()) return false;
    std::uint64_t v = s->grants.load();
    if (grant_part(v) == 0) return false;
    // Marked before it takes one: a waiter killed between the two is then counted as having
    // taken it (at worst its wake-up is left over), never as not (a wake-up lost for the others).
    if (slot != no_slot) slots_[slot].owner.store(self() | claiming_bit, std::memory_order_release);
    while (grant_part(v) > 0) {
      const std::uint64_t e = eligible_part(v);
      if (s->grants.compare_exchange_weak(v, grant_word(grant_part(v) - 1, e > 0 ? e - 1 : 0))) return true;
    }
    if (slot != no_slot) slots_[slot].owner.store(self(), std::memory_order_release);
    return false;
  }

  // A waiter that was not woken, alive or dead, leaves the counts (the lock held, or racing a
  // notify for an abandoned wait without a slot). If a notify came since it arrived, it may have
  // been counted for a wake-up: when there are as many wake-ups as waiters that may claim one,
  // one was for it and goes with it; else the others keep them all.
  void leave(std::uint64_t ticket) noexcept {
    if (ticket < s->all_upto.load()) return;  // woken by notify_all: counted nowhere
    if (ticket < s->grant_limit.load()) {
      std::uint64_t v = s->grants.load();
      for (;;) {
        const std::uint64_t g = grant_part(v), e = eligible_part(v);
        const bool had_grant = g > 0 && g >= e;
        if (s->grants.compare_exchange_weak(v, grant_word(had_grant ? g - 1 : g, e > 0 ? e - 1 : 0))) {
          if (had_grant) return;
          break;
        }
      }
    }
    std::uint32_t w = s->waiting.load();
    while (w > 0 && !s->waiting.compare_exchange_weak(w, w - 1)) {
    }
  }

  // After taking the lock again: a waiter that was not woken leaves; its slot is free again.
  bool finish_condition_wait(std::uint64_t ticket, std::uint32_t slot, bool woken) noexcept {
    if (!woken) woken = claim(ticket, slot);
    if (!woken) leave(ticket);
    if (slot != no_slot) slots_[slot].owner.store(0, std::memory_order_release);
    return woken;
  }

  // A wait that goes with its event loop, without the lock: if it was woken, its slot is free
  // again; else the slot is marked abandoned, and the next sweep under the lock accounts for it
  // as for a dead waiter. Without a slot it leaves now.
  void abandon_condition_wait(std::uint64_t ticket, std::uint32_t slot, bool woken) noexcept {
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
  void reclaim(bool lingering, bool zombies) noexcept {
    const std::uint32_t used = s->slots_used.load(std::memory_order_relaxed);
    const std::uint64_t all_upto = s->all_upto.load(), grant_limit = s->grant_limit.load();
    std::uint64_t live = 0;
    if (lingering && grant_part(s->grants.load()) == 0) return;
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
      if (owner == 0) continue;
      const std::uint64_t ticket = slot.ticket.load(std::memory_order_relaxed);
      if (lingering && ((owner & claiming_bit) || ticket < all_upto || ticket >= grant_limit)) continue;
      if (!(owner & abandoned_bit) && !gone(owner & pid_mask)) {
        if (lingering && ++live >= grant_part(s->grants.load())) return;
        continue;
      }
      if (!(owner & claiming_bit)) leave(ticket);
      slot.owner.store(0, std::memory_order_release);
    }
  }

  error_code wait_condition(sync_deadline deadline) noexcept {
    if (!holds_lock()) return errc::not_owner;
    std::uint32_t slot = no_slot;
    const std::uint64_t ticket = take_ticket(slot);
    unlock(0);
    bool woken = false;
    for (;;) {
      const std::uint32_t seen = s->generation.load();
      if ((woken = claim(ticket, slot))) break;
      if (!futex_wait(s->generation, seen, deadline) && !(woken = claim(ticket, slot))) break;
    }
    const error_code relocked = lock(std::nullopt, true, 0);  // as Python: even after a timeout
    woken = finish_condition_wait(ticket, slot, woken);
    if (relocked) return relocked;  // owner_died: held, and the caller should know
    return woken ? error_code() : error_code(errc::timed_out);
  }

  error_code notify(std::size_t count, bool all) noexcept {
    if (!holds_lock()) return errc::not_owner;
    if (s->waiting.load() == 0) return {};
    if (all) {
      s->waiting.store(0);
      s->grants.store(0);
      s->all_upto.store(s->next_ticket.load());
    } else {
      if (count == 0) return {};
      // This notify lets every waiter claim: wake-ups of earlier ones that dead waiters left
      // would then go to waiters that came since, on top of this one's.
      if (grant_part(s->grants.load()) > 0) reclaim(true, false);
      // Every waiter counted may claim from now on: those waiting, and those granted one.
      std::uint64_t v = s->grants.load();
      std::uint32_t waiting = 0, woken = 0;
      do {
        waiting = s->waiting.load();
        woken = static_cast<std::uint32_t>(std::min<std::size_t>(count, waiting));
        if (woken == 0) return {};
      } while (!s->grants.compare_exchange_weak(v, grant_word(grant_part(v) + woken, waiting + grant_part(v))));
      s->waiting.fetch_sub(woken);
      s->grant_limit.store(s->next_ticket.load());
    }
    s->generation.fetch_add(1);
    futex_wake(s->generation, INT_MAX);  // each looks whether it may claim a wake-up
    return {};
  }

  // -- barriers -------------------------------------------------------------------------------

  static std::uint64_t bit(std::uint32_t generation) { return std::uint64_t(1) << (generation % 64); }

  void internal_lock() noexcept { (void)lock(std::nullopt, true, 0); }  // held for a few instructions
  void internal_unlock() noexcept { (void)unlock(0); }

  // Ends generation `g` (the lock held): everyone waiting in it wakes.
  void end_generation(std::uint32_t g, bool broken) noexcept {
    if (broken) s->broken_generations.fetch_or(bit(g));
    s->broken_generations.fetch_and(~bit(g + 1));
    s->arrived.store(0);
    s->generation.store(g + 1);
  }

  // Arrives; returns the generation to wait for, or completes (`done`).
  std::uint32_t arrive(std::size_t& index, error_code& ec, bool& done) noexcept {
    internal_lock();
    const std::uint32_t g = s->generation.load();
    if (s->flag.load()) {
      internal_unlock();
      ec = errc::broken_barrier;
      done = true;
      return g;
    }
    index = s->arrived.fetch_add(1);
    done = index + 1 >= s->parties.load();
    if (done) end_generation(g, false);
    internal_unlock();
    if (done) futex_wake(s->generation, INT_MAX);
    return g;
  }

  // Generation `g` is over: how it ended for its waiters.
  error_code outcome_of(std::uint32_t g) noexcept {
    return (s->broken_generations.load() & bit(g)) ? error_code(errc::broken_barrier) : error_code();
  }

  // Breaks generation `g` if it is still the current one (a wait timed out or was cancelled).
  void break_barrier(std::uint32_t g, bool stay_broken) noexcept {
    internal_lock();
    if (s->generation.load() == g) {
      if (stay_broken) s->flag.store(1);
      end_generation(g, true);
    }
    internal_unlock();
    futex_wake(s->generation, INT_MAX);
  }

  error_code wait_barrier(sync_deadline deadline, std::size_t& index) noexcept {
    error_code ec;
    bool done = false;
    const std::uint32_t g = arrive(index, ec, done);
    if (done) return ec;
    while (s->generation.load() == g) {
      if (!futex_wait(s->generation, g, deadline) && s->generation.load() == g) {
        break_barrier(g, true);  // Python: a timeout breaks the barrier for everyone…
        // …unless the last party came first.
        return outcome_of(g) ? error_code(errc::timed_out) : error_code();
      }
    }
    return outcome_of(g);
  }

  // Broken for good (until reset), whatever generation is current when the lock is held.
  void abort() noexcept {
    internal_lock();
    s->flag.store(1);
    if (s->arrived.load() > 0) end_generation(s->generation.load(), true);
    internal_unlock();
    futex_wake(s->generation, INT_MAX);
  }

  void reset() noexcept {
    internal_lock();
    const std::uint32_t g = s->generation.load();
    if (s->arrived.load() > 0) end_generation(g, true);  // those waiting now see it broken
    s->flag.store(0);
    internal_unlock();
    futex_wake(s->generation, INT_MAX);
  }

 private:
  sync_kind kind_;
  std::shared_ptr<void> memory_;
  waiter_slot* slots_ = nullptr;  // conditions
  std::atomic<clock_type::rep> next_owner_check_{0};   // this process's, not shared
  std::atomic<clock_type::rep> next_waiter_check_{0};  // conditions: looks at waiters' processes
};

// ---------------------------------------------------------------------------------------------

std::shared_ptr<void> allocate_shared_memory(std::size_t bytes) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t size = std::max<std::size_t>(page, (bytes + page - 1) / page * page);
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    throw boost::system::system_error(error_code(errno, boost::system::system_category()),
                                      "herd: cannot map " + std::to_string(size) + " bytes of shared memory");
  return std::shared_ptr<void>(memory, [size](void* p) { ::munmap(p, size); });
}

std::shared_ptr<sync_core> make_sync_core(sync_kind kind, std::size_t value) {
  if (kind == sync_kind::barrier && value == 0)
    throw boost::system::system_error(errc::invalid_argument, "herd: a barrier needs at least one party");
  if (value > std::numeric_limits<std::uint32_t>::max())
    throw boost::system::system_error(
        errc::invalid_argument, "herd: " + std::string(kind == sync_kind::barrier ? "a barrier's parties" : "a value") +
                                    " of " + std::to_string(value) + " is above the limit of 4294967295");
  return std::make_shared<sync_core>(kind, static_cast<std::uint32_t>(value));
}

error_code sync_acquire(sync_core& core, sync_deadline deadline, bool block) noexcept {
  if (core.is_lock()) return core.lock(deadline, block, thread_tag());
  if (core.kind() == sync_kind::semaphore || core.kind() == sync_kind::bounded_semaphore)
    return core.down(deadline, block);
  return errc::invalid_argument;
}

error_code sync_release(sync_core& core) noexcept {
  if (core.is_lock()) return core.unlock(thread_tag());
  if (core.kind() == sync_kind::semaphore || core.kind() == sync_kind::bounded_semaphore) return core.up();
  return errc::invalid_argument;
}

error_code sync_wait(sync_core& core, sync_deadline deadline, std::size_t& index) noexcept {
  index = 0;
  switch (core.kind()) {
    case sync_kind::event: return core.wait_event(deadline);
    case sync_kind::condition: return core.wait_condition(deadline);
    case sync_kind::barrier: return core.wait_barrier(deadline, index);
    default: return errc::invalid_argument;
  }
}

void event_set(sync_core& core) noexcept { core.set(); }
void event_clear(sync_core& core) noexcept { core.s->flag.store(0); }
error_code condition_notify(sync_core& core, std::size_t count, bool all) noexcept { return core.notify(count, all); }
void barrier_reset(sync_core& core) noexcept { core.reset(); }
void barrier_abort(sync_core& core) noexcept { core.abort(); }

sync_status sync_query(const sync_core& core) noexcept {
  const shared_state& s = *core.s;
  sync_status status;
  status.owner = static_cast<int>(s.lock_word.load() & pid_mask);
  switch (core.kind()) {
    case sync_kind::rlock: status.value = status.owner ? s.depth.load() : 0; break;
    case sync_kind::semaphore:
    case sync_kind::bounded_semaphore: status.value = s.value.load(); break;
    case sync_kind::event:
      status.value = s.flag.load();
      status.waiting = s.waiters.load();
      break;
    case sync_kind::barrier:
      status.owner = 0;
      status.value = s.parties.load();
      status.waiting = s.arrived.load();
      status.broken = s.flag.load() != 0;
      break;
    default: break;
  }
  return status;
}

// ---------------------------------------------------------------------------------------------
// Awaitable forms: a small state machine per operation, run on the caller's executor. When it
// must wait, it hands (word, expected value) to the waiter thread, which resumes it once the
// word may have changed; it then looks again. Cancellation forgets the pending wait and undoes
// what the operation had registered.

namespace {

class async_sync_op : public std::enable_shared_from_this<async_sync_op> {
 public:
  async_sync_op(std::shared_ptr<sync_core> core, sync_operation operation, const asio::any_io_executor& home,
                asio::any_completion_handler<void(error_code, std::size_t)> handler)
      : core_(std::move(core)),
        operation_(operation),
        home_(home),
        work_(asio::prefer(home, asio::execution::outstanding_work.tracked)),
        handler_(std::move(handler)) {}

  // Destroyed before it completed (its event loop was destroyed, or a posted completion was
  // dropped): give back what it holds, and undo what it registered, so others are not blocked.
  ~async_sync_op() {
    if (!handler_) return;
    auto& c = *core_;
    if (finished_) {
      const bool holds = !result_ || result_ == errc::owner_died;
      if (holds && (operation_ == sync_operation::acquire || c.kind() == sync_kind::condition)) {
        if (c.is_lock()) c.unlock(async_tag);
        else c.up();
      }
      return;
    }
    switch (c.kind()) {
      case sync_kind::semaphore:
      case sync_kind::bounded_semaphore:
        finish_registered({});
        if (c.s->value.load() > 0) futex_wake(c.s->value, 1);
        break;
      case sync_kind::event: finish_registered({}); break;
      case sync_kind::condition:
        // Waiting, or taking the lock again: it goes without finishing its wait.
        if (phase_ == 1) c.abandon_condition_wait(ticket_, slot_, c.claim(ticket_, slot_));
        if (phase_ == 2) c.abandon_condition_wait(ticket_, slot_, woken_);
        if (slept_) c.pass_on_wake();
        break;
      case sync_kind::barrier:
        if (registered_) c.break_barrier(seen_, true);  // a party is gone: the others must not wait for it
        break;
      default:
        if (slept_) c.pass_on_wake();
        break;
    }
  }

  void start() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected())
      slot.assign([weak = weak_from_this()](asio::cancellation_type) {
        if (auto self = weak.lock()) self->request_cancel();
      });
    if (step(false)) {
      // Never inside the initiating call.
      post_completion(home_, [self = shared_from_this()] { self->complete(); });
    }
  }

 private:
  struct wait_plan {
    const atomic_word* word;
    std::uint32_t expected;
    std::optional<clock_type::time_point> recheck;
  };

  void request_cancel() {
    cancel_requested_ = true;
    if (cancellable_)
      if (const std::uint64_t id = wait_id_.exchange(0)) cancel_async_wait(id);
  }

  void resume(error_code ec) {
    wait_id_ = 0;
    if (step(ec == asio::error::operation_aborted || (cancel_requested_ && cancellable_))) complete();
  }

  // Runs the operation as far as it goes. True once `result_` is final; else a wait is pending.
  bool step(bool cancelled) {
    auto& c = *core_;
    std::optional<wait_plan> plan;
    switch (operation_) {
      case sync_operation::acquire: plan = c.is_lock() ? acquire_lock(cancelled) : acquire_unit(cancelled); break;
      case sync_operation::wait:
        switch (c.kind()) {
          case sync_kind::event: plan = wait_event(cancelled); break;
          case sync_kind::condition: plan = wait_condition(cancelled); break;
          case sync_kind::barrier: plan = wait_barrier(cancelled); break;
          default: result_ = errc::invalid_argument; break;
        }
        break;
    }
    if (!plan) return finished_ = true;
    auto self = shared_from_this();
    // The id is in wait_id_ before the waiter thread can resume us (on another thread, maybe).
    async_futex_wait(*plan->word, plan->expected, plan->recheck, home_, [self](error_code ec) { self->resume(ec); },
                     wait_id_);
    // A cancellation that came while the plan was made: forget the wait at once.
    if (cancel_requested_ && cancellable_)
      if (const std::uint64_t id = wait_id_.exchange(0)) cancel_async_wait(id);
    return false;
  }

  // Takes the lock (result in `result_`, then nothing to wait for), or says what to sleep on.
  std::optional<wait_plan> take_lock() {
    auto& c = *core_;
    for (;;) {
      if (c.take_if_free(async_tag, slept_)) return finish({});
      if (c.take_from_dead_owner(c.s->lock_word.load(std::memory_order_relaxed), async_tag))
        return finish(errc::owner_died);
      if (const std::uint32_t v = c.announce_waiter()) {
        slept_ = true;
        return wait_plan{&c.s->lock_word, v, clock_type::now() + owner_check};
      }
    }
  }

  std::optional<wait_plan> acquire_lock(bool cancelled) {
    if (cancelled) {
      if (slept_) core_->pass_on_wake();
      return finish(asio::error::operation_aborted);
    }
    return take_lock();
  }

  std::optional<wait_plan> acquire_unit(bool cancelled) {
    auto& s = *core_->s;
    if (!cancelled && core_->take_unit()) return finish_registered({});
    if (cancelled) {
      // A wake-up this operation may have taken goes to another waiter.
      if (registered_ && s.value.load() > 0) futex_wake(s.value, 1);
      return finish_registered(asio::error::operation_aborted);
    }
    if (!registered_) {
      registered_ = true;
      s.waiters.fetch_add(1);
      if (core_->take_unit()) return finish_registered({});
    }
    return wait_plan{&s.value, 0, clock_type::now() + owner_check};
  }

  std::optional<wait_plan> wait_event(bool cancelled) {
    auto& s = *core_->s;
    if (!registered_) {
      seen_ = s.generation.load();
      if (s.flag.load()) return finish({});
      registered_ = true;
      s.waiters.fetch_add(1);
    }
    if (s.flag.load() || s.generation.load() != seen_) return finish_registered({});
    if (cancelled) return finish_registered(asio::error::operation_aborted);
    return wait_plan{&s.generation, seen_, std::nullopt};
  }

  std::optional<wait_plan> wait_condition(bool cancelled) {
    auto& c = *core_;
    enum { starting, waiting, relocking };
    if (phase_ == starting) {
      if (!c.holds_lock()) return finish(errc::not_owner);
      ticket_ = c.take_ticket(slot_);
      c.unlock(async_tag);
      phase_ = waiting;
    }
    if (phase_ == waiting) {
      const std::uint32_t seen = c.s->generation.load();
      woken_ = c.claim(ticket_, slot_);
      if (!woken_ && !cancelled) return wait_plan{&c.s->generation, seen, std::nullopt};
      aborted_ = cancelled && !woken_;
      phase_ = relocking;
      cancellable_ = false;  // from here the lock must be taken again, cancelled or not
    }
    // The lock again, cancelled or not: a condition's wait returns holding it.
    if (auto plan = take_lock()) return plan;
    const bool woken = c.finish_condition_wait(ticket_, slot_, woken_);
    if (result_) return std::nullopt;  // owner_died: held, and the caller should know
    return finish(aborted_ && !woken ? error_code(asio::error::operation_aborted) : error_code());
  }

  std::optional<wait_plan> wait_barrier(bool cancelled) {
    auto& c = *core_;
    if (!registered_) {
      registered_ = true;
      bool done = false;
      error_code ec;
      seen_ = c.arrive(index_, ec, done);
      if (done) return finish(ec);
    }
    if (c.s->generation.load() != seen_) return finish(c.outcome_of(seen_));
    if (cancelled) {
      c.break_barrier(seen_, true);  // as a timeout does, unless the last party came first
      return finish(c.outcome_of(seen_) ? error_code(asio::error::operation_aborted) : error_code());
    }
    return wait_plan{&c.s->generation, seen_, std::nullopt};
  }

  std::nullopt_t finish(error_code ec) {
    result_ = ec;
    return std::nullopt;
  }
  // Semaphores and events: no longer one of the callers that may sleep.
  std::nullopt_t finish_registered(error_code ec) {
    if (registered_) core_->s->waiters.fetch_sub(1);
    registered_ = false;
    return finish(ec);
  }

  void complete() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    auto handler = std::move(handler_);
    std::move(handler)(result_, index_);
  }

  std::shared_ptr<sync_core> core_;
  sync_operation operation_;
  asio::any_io_executor home_;
  asio::any_io_executor work_;  // keeps the event loop running while the operation waits
  asio::any_completion_handler<void(error_code, std::size_t)> handler_;
  std::atomic<std::uint64_t> wait_id_{0};
  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> cancellable_{true};
  bool finished_ = false;  // result_ is final
  error_code result_;
  std::size_t index_ = 0;
  bool registered_ = false;
  bool slept_ = false;
  std::uint32_t seen_ = 0;
  int phase_ = 0;
  std::uint64_t ticket_ = 0;
  std::uint32_t slot_ = no_slot;
  bool woken_ = false;
  bool aborted_ = false;
};

}  // namespace

void async_sync_erased(std::shared_ptr<sync_core> core, sync_operation operation, const asio::any_io_executor& home,
                asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  if (!core) return post_completion(home, std::move(handler), error_code(errc::not_running), std::size_t(0));
  std::make_shared<async_sync_op>(std::move(core), operation, home, std::move(handler))->start();
}

}  // namespace herd::detail
