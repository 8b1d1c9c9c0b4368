// herd's synchronization primitives across processes: sync_core's operations on its shared state
// (detail/sync_primitive.hpp) and their blocking forms, which sleep in the caller's thread. The
// awaitable forms are in sync_async.cpp, a condition's waiters in detail/condition_waiters.cpp,
// and what each step decides in detail/sync_steps.hpp. Uncontended acquires and releases are one
// atomic operation, no system call.
#include "detail/sync_primitive.hpp"
#include "detail/system_code.hpp"

#include <herd/error.hpp>
#include <herd/sync.hpp>

#include "detail/futex.hpp"
#include "detail/fork_lock.hpp"
#include "detail/reap.hpp"
#include "detail/sync_liveness.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <limits>
#include <new>
#include <string>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace herd::detail {
namespace {

constexpr std::size_t table_offset =
    (sizeof(shared_state) + alignof(waiter_table) - 1) / alignof(waiter_table) * alignof(waiter_table);

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

}  // namespace

sync_core::sync_core(sync_kind kind, std::uint32_t value)
    : kind_(kind),
      memory_(allocate_shared_memory(kind == sync_kind::condition ? table_offset + sizeof(waiter_table)
                                                                  : sizeof(shared_state))) {
  s = new (memory_.get()) shared_state{};
  if (kind == sync_kind::condition)
    waiters_.emplace(s->condition, *new (static_cast<char*>(memory_.get()) + table_offset) waiter_table{});
  if (kind == sync_kind::semaphore || kind == sync_kind::bounded_semaphore) {
    s->value.store(value);
    s->maximum.store(semaphore_maximum(kind == sync_kind::bounded_semaphore, value));
  }
  if (kind == sync_kind::barrier) s->parties.store(value);
}

// -- locks ------------------------------------------------------------------------------------

bool sync_core::take_if_free(std::uint32_t tag, bool contended) noexcept {
  std::uint32_t v = s->lock_word.load(std::memory_order_relaxed);
  while (const std::optional<std::uint32_t> taken = word_after_taking(v, self(), contended))
    if (s->lock_word.compare_exchange_weak(v, *taken, std::memory_order_acquire)) return became_owner(tag), true;
  return false;
}

// A waiter that leaves without the lock (timed out, cancelled) may have taken the wake-up of
// the last release: pass it on if the lock is free, else make sure the holder's release wakes
// someone (its bit may have been cleared by that release).
void sync_core::pass_on_wake() noexcept {
  if (announce_waiter() == 0) futex_wake(s->lock_word, 1);
}

void sync_core::became_owner(std::uint32_t tag) noexcept {
  if (kind_ == sync_kind::rlock) {
    s->owner_thread.store(tag, std::memory_order_relaxed);
    s->depth.store(1, std::memory_order_relaxed);
  }
}

// A lock held by this thread already (rlock, not for awaitable acquisitions): one level more.
bool sync_core::reenter(std::uint32_t tag) noexcept {
  if (kind_ != sync_kind::rlock) return false;
  if (!rlock_reenters(s->lock_word.load(std::memory_order_acquire), self(),
                      s->owner_thread.load(std::memory_order_relaxed), tag))
    return false;
  s->depth.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// The holder recorded in `observed` no longer exists: take the lock from it (owner_died).
// Looking costs system calls (kill, /proc): at most every owner_check per lock and process.
bool sync_core::take_from_dead_owner(std::uint32_t observed, std::uint32_t tag) noexcept {
  if (!may_take_from_dead_owner(observed, self()) || !look_due(next_owner_check_)) return false;
  if (!process_gone(static_cast<int>(lock_owner(observed)))) return false;
  if (!s->lock_word.compare_exchange_strong(observed, self() | waiters_bit, std::memory_order_acquire)) return false;
  became_owner(tag);
  return true;
}

// Marks the word as slept on; returns the value to sleep on, or 0 if the lock became free.
std::uint32_t sync_core::announce_waiter() noexcept {
  std::uint32_t v = s->lock_word.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint32_t marked = word_to_sleep_on(v);
    if (marked == 0 || marked == v) return marked;
    if (s->lock_word.compare_exchange_weak(v, marked, std::memory_order_relaxed)) return marked;
  }
}

// One attempt that never sleeps: success, owner_died or would_block.
error_code sync_core::try_lock(std::uint32_t tag) noexcept {
  if (reenter(tag) || take_if_free(tag)) return {};
  if (take_from_dead_owner(s->lock_word.load(std::memory_order_relaxed), tag)) return errc::owner_died;
  return errc::would_block;
}

error_code sync_core::lock(deadline deadline, bool block, std::uint32_t tag) noexcept {
  if (error_code ec = try_lock(tag); ec != errc::would_block || !block) return ec;
  if (spin_until([&] { return take_if_free(tag); })) return {};
  for (;;) {
    const std::uint32_t v = announce_waiter();
    if (v == 0) {
      if (take_if_free(tag, true)) return {};
      continue;
    }
    futex_wait(s->lock_word, v, next_look(deadline, deadline_clock::now()));
    if (take_if_free(tag, true)) return {};
    if (take_from_dead_owner(s->lock_word.load(std::memory_order_relaxed), tag)) return errc::owner_died;
    if (deadline_passed(deadline, deadline_clock::now())) {
      pass_on_wake();
      return errc::timed_out;
    }
  }
}

error_code sync_core::unlock(std::uint32_t tag) noexcept {
  if (lock_owner(s->lock_word.load(std::memory_order_acquire)) != self()) return errc::not_owner;
  if (kind_ == sync_kind::rlock) {
    if (!rlock_release_allowed(s->owner_thread.load(std::memory_order_relaxed), tag)) return errc::not_owner;
    if (rlock_still_held(s->depth.fetch_sub(1, std::memory_order_relaxed))) return {};
    s->owner_thread.store(0, std::memory_order_relaxed);
  }
  if (release_wakes_one(s->lock_word.exchange(0, std::memory_order_release))) futex_wake(s->lock_word, 1);
  return {};
}

bool sync_core::holds_lock() const noexcept { return lock_owner(s->lock_word.load(std::memory_order_acquire)) == self(); }

// -- semaphores -------------------------------------------------------------------------------

// seq_cst, as the release's: a waiter counts itself, then looks; a release adds, then looks
// for waiters; one of the two sees the other.
bool sync_core::take_unit() noexcept {
  std::uint32_t v = s->value.load();
  while (const std::optional<std::uint32_t> taken = value_after_taking(v))
    if (s->value.compare_exchange_weak(v, *taken)) return true;
  return false;
}

error_code sync_core::down(deadline deadline, bool block) noexcept {
  if (take_unit()) return {};
  if (!block) return errc::would_block;
  if (spin_until([&] { return take_unit(); })) return {};
  s->waiters.fetch_add(1);  // seq_cst with the release's load: one of us sees the other
  for (;;) {
    if (take_unit()) break;
    // The recheck bounds what a wake-up lost to a waiter that died or left costs.
    futex_wait(s->value, 0, next_look(deadline, deadline_clock::now()));
    if (take_unit()) break;
    if (deadline_passed(deadline, deadline_clock::now())) {
      s->waiters.fetch_sub(1);
      return errc::timed_out;
    }
  }
  s->waiters.fetch_sub(1);
  return {};
}

error_code sync_core::up() noexcept {
  std::uint32_t v = s->value.load(std::memory_order_relaxed);
  std::optional<std::uint32_t> raised;
  do {
    raised = value_after_release(v, s->maximum.load(std::memory_order_relaxed));
    if (!raised) return errc::invalid_argument;
  } while (!s->value.compare_exchange_weak(v, *raised));
  if (release_wakes_sleepers(s->waiters.load())) futex_wake(s->value, 1);
  return {};
}

// -- events -----------------------------------------------------------------------------------

void sync_core::set() noexcept {
  s->flag.store(1);
  s->generation.fetch_add(1);
  if (release_wakes_sleepers(s->waiters.load())) futex_wake(s->generation, INT_MAX);
}

error_code sync_core::wait_event(deadline deadline) noexcept {
  const std::uint32_t seen = s->generation.load();
  if (s->flag.load()) return {};
  s->waiters.fetch_add(1);
  error_code result;
  while (!event_wait_over(s->flag.load(), s->generation.load(), seen)) {
    if (!futex_wait(s->generation, seen, deadline) && !event_wait_over(s->flag.load(), s->generation.load(), seen)) {
      result = errc::timed_out;
      break;
    }
  }
  s->waiters.fetch_sub(1);
  return result;
}

// -- conditions -------------------------------------------------------------------------------

error_code sync_core::wait_condition(deadline deadline) noexcept {
  if (!holds_lock()) return errc::not_owner;
  std::uint32_t slot = no_slot;
  const std::uint64_t ticket = waiters_->take_ticket(slot);
  unlock(0);
  bool woken = false;
  for (;;) {
    const std::uint32_t seen = s->generation.load();
    if ((woken = waiters_->claim(ticket, slot))) break;
    if (!futex_wait(s->generation, seen, deadline) && !(woken = waiters_->claim(ticket, slot))) break;
  }
  const error_code relocked = lock(std::nullopt, true, 0);  // as Python: even after a timeout
  woken = waiters_->finish_wait(ticket, slot, woken);
  if (relocked) return relocked;  // owner_died: held, and the caller should know
  return woken ? error_code() : error_code(errc::timed_out);
}

error_code sync_core::notify(std::size_t count, bool all) noexcept {
  if (!holds_lock()) return errc::not_owner;
  if (!waiters_->notify(count, all)) return {};
  s->generation.fetch_add(1);
  futex_wake(s->generation, INT_MAX);  // each looks whether it may claim a wake-up
  return {};
}

// -- barriers ---------------------------------------------------------------------------------

void sync_core::internal_lock() noexcept { (void)lock(std::nullopt, true, 0); }  // held for a few instructions
void sync_core::internal_unlock() noexcept { (void)unlock(0); }

// Ends generation `g` (the lock held): everyone waiting in it wakes.
void sync_core::end_generation(std::uint32_t g, bool broken) noexcept {
  s->broken_generations.store(broken_generations_after_end(s->broken_generations.load(), g, broken));
  s->arrived.store(0);
  s->generation.store(g + 1);
}

// Arrives; returns the generation to wait for, or completes (`done`).
std::uint32_t sync_core::arrive(std::size_t& index, error_code& ec, bool& done) noexcept {
  internal_lock();
  const std::uint32_t g = s->generation.load();
  const barrier_arrival arrival = arrive_at_barrier(s->flag.load() != 0, s->arrived.load(), s->parties.load());
  done = arrival.outcome != barrier_outcome::waits;
  if (arrival.outcome == barrier_outcome::broken) {
    internal_unlock();
    ec = errc::broken_barrier;
    return g;
  }
  index = arrival.index;
  if (arrival.outcome == barrier_outcome::trips) end_generation(g, false);
  else s->arrived.store(arrival.index + 1);
  internal_unlock();
  if (done) futex_wake(s->generation, INT_MAX);
  return g;
}

// Generation `g` is over: how it ended for its waiters.
error_code sync_core::outcome_of(std::uint32_t g) noexcept {
  return generation_broken(s->broken_generations.load(), g) ? error_code(errc::broken_barrier) : error_code();
}

// Breaks generation `g` if it is still the current one (a wait timed out or was cancelled).
void sync_core::break_barrier(std::uint32_t g, bool stay_broken) noexcept {
  internal_lock();
  if (s->generation.load() == g) {
    if (stay_broken) s->flag.store(1);
    end_generation(g, true);
  }
  internal_unlock();
  futex_wake(s->generation, INT_MAX);
}

error_code sync_core::wait_barrier(deadline deadline, std::size_t& index) noexcept {
  error_code ec;
  bool done = false;
  const std::uint32_t g = arrive(index, ec, done);
  if (done) return ec;
  while (s->generation.load() == g) {
    if (!futex_wait(s->generation, g, deadline) && s->generation.load() == g) {
      break_barrier(g, true);  // Python: a timeout breaks the barrier for everyone…
      // …unless the last party came first.
      return barrier_give_up_result(s->broken_generations.load(), g, errc::timed_out);
    }
  }
  return outcome_of(g);
}

// Broken for good (until reset), whatever generation is current when the lock is held.
void sync_core::abort() noexcept {
  internal_lock();
  s->flag.store(1);
  if (s->arrived.load() > 0) end_generation(s->generation.load(), true);
  internal_unlock();
  futex_wake(s->generation, INT_MAX);
}

void sync_core::reset() noexcept {
  internal_lock();
  const std::uint32_t g = s->generation.load();
  if (s->arrived.load() > 0) end_generation(g, true);  // those waiting now see it broken
  s->flag.store(0);
  internal_unlock();
  futex_wake(s->generation, INT_MAX);
}

// ---------------------------------------------------------------------------------------------

std::shared_ptr<void> allocate_shared_memory(std::size_t bytes) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t size = std::max<std::size_t>(page, (bytes + page - 1) / page * page);
  void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED)
    throw boost::system::system_error(system_code(errno),
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

error_code sync_acquire(sync_core& core, sync_timeout timeout, bool block) noexcept {
  const deadline deadline = timeout ? deadline_after(timeout) : std::nullopt;  // no clock read, no call
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

error_code sync_wait(sync_core& core, sync_timeout timeout, std::size_t& index) noexcept {
  const deadline deadline = timeout ? deadline_after(timeout) : std::nullopt;
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

}  // namespace herd::detail
