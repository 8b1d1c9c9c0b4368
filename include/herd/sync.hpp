/// @file herd/sync.hpp
/// Synchronization between processes: Python's `multiprocessing.Lock`, `RLock`, `Semaphore`,
/// `BoundedSemaphore`, `Event`, `Condition` and `Barrier`. Every wait comes twice: awaitable
/// (`async_acquire`, `async_wait`: the event loop never blocks) and blocking (`acquire`, `wait`,
/// with timeouts) for children without a loop.
///
/// Each primitive is a page of shared memory made when it is constructed: create it *before*
/// starting the children that use it, and give it to them (copies of a handle are the same
/// primitive). An uncontended acquire and release is one atomic operation and no system call; a
/// contended one polls briefly, then sleeps on a futex. A lock whose holder dies is not a
/// deadlock: the next acquirer gets errc::owner_died and holds the lock.
#pragma once

#include <herd/config.hpp>
#include <herd/detail/adapted_handler.hpp>
#include <herd/detail/chrono.hpp>
#include <herd/detail/deadline.hpp>
#include <herd/detail/sync_core.hpp>
#include <herd/error.hpp>

#include <boost/asio/associated_executor.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

namespace herd {

template <typename Lockable>
class lock_guard;

/// Tag for a lock_guard that takes over a lock already held.
struct adopt_lock_t {
  explicit adopt_lock_t() = default;
};
inline constexpr adopt_lock_t adopt_lock{};

namespace detail {

/// What every primitive has: its executor and its shared core.
class sync_handle {
 public:
  using executor_type = asio::any_io_executor;
  executor_type get_executor() const noexcept { return executor_; }

  sync_handle(const sync_handle&) = default;
  sync_handle& operator=(const sync_handle&) = default;
  // A moved-from handle keeps its executor, for the completions that report it empty.
  sync_handle(sync_handle&& other) noexcept : executor_(other.executor_), core_(std::move(other.core_)) {}
  sync_handle& operator=(sync_handle&& other) noexcept {
    executor_ = other.executor_;
    core_ = std::move(other.core_);
    return *this;
  }

 protected:
  // An empty handle, for a lock_guard that holds nothing.
  sync_handle() noexcept = default;
  sync_handle(const executor_type& ex, sync_kind kind, std::size_t value)
      : executor_(ex), core_(make_sync_core(kind, value)) {}

  // The awaitable forms; the completion keeps the caller's executor and cancellation slot.
  template <typename Signature, typename Token, typename Deliver>
  auto initiate(sync_operation operation, Token&& token, Deliver deliver) {
    return asio::async_initiate<Token, Signature>(
        [](auto handler, std::shared_ptr<sync_core> core, executor_type ex, sync_operation op, Deliver deliver) {
          executor_type home = asio::get_associated_executor(handler, ex);
          async_sync_erased(std::move(core), op, home,
                            adapt(std::move(handler), [deliver](auto&& h, error_code ec, std::size_t index) mutable {
                              deliver(std::move(h), ec, index);
                            }));
        },
        token, core_, executor_, operation, std::move(deliver));
  }

  template <typename Token>
  auto initiate_void(sync_operation operation, Token&& token) {
    return initiate<void(error_code)>(operation, std::forward<Token>(token),
                                      [](auto&& handler, error_code ec, std::size_t) { std::move(handler)(ec); });
  }

  static void check(error_code ec, const char* operation) {
    if (ec) throw_error(ec, operation);
  }

  // A moved-from handle has no core: its queries answer as a fresh primitive would, every other
  // call reports errc::not_running.
  sync_core& core(const char* operation) const {
    if (!core_) throw_error(errc::not_running, operation);
    return *core_;
  }
  sync_status status() const noexcept { return core_ ? sync_query(*core_) : sync_status{}; }

  executor_type executor_;
  std::shared_ptr<sync_core> core_;
};

/// acquire / release, blocking and awaitable, for locks, semaphores and conditions.
template <typename Derived>
class acquirable : public sync_handle {
 public:
  /// Blocks until acquired. Throws system_error(errc::owner_died) *holding the lock* if the
  /// previous holder died with it: repair what it protects, then release.
  void acquire() { check(sync_acquire(core("acquire"), std::nullopt, true), "acquire"); }
  /// errc::owner_died (held) instead of throwing.
  void acquire(error_code& ec) noexcept {
    ec = core_ ? sync_acquire(*core_, std::nullopt, true) : error_code(errc::not_running);
  }
  /// Waits at most `timeout`: false if it was not acquired (Python's acquire(timeout=t)).
  bool acquire(std::chrono::milliseconds timeout) {
    const error_code ec = sync_acquire(core("acquire"), timeout, true);
    if (ec == errc::timed_out) return false;
    check(ec, "acquire");
    return true;
  }
  /// Never waits: false if it is taken (Python's acquire(block=False)).
  bool try_acquire() {
    const error_code ec = sync_acquire(core("try_acquire"), std::nullopt, false);
    if (ec == errc::would_block) return false;
    check(ec, "try_acquire");
    return true;
  }
  /// errc::not_owner for a lock this process (or, for an rlock, this thread) does not hold;
  /// errc::invalid_argument for a bounded semaphore released above its initial value.
  void release() { check(sync_release(core("release")), "release"); }
  void release(error_code& ec) noexcept { ec = core_ ? sync_release(*core_) : error_code(errc::not_running); }

  /// Acquires without blocking the event loop.
  /// @par Completion signature `void(error_code)`: errc::owner_died means acquired (see
  ///   acquire()).
  /// @par Cancellation terminal, partial, total: nothing is acquired, and a wake-up the
  ///   operation received goes to another waiter.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_acquire(Token&& token = {}) {
    return initiate_void(sync_operation::acquire, std::forward<Token>(token));
  }

  /// Acquires, and hands over a lock_guard that releases when it goes.
  /// @par Completion signature `void(error_code, lock_guard<Derived>)`: a dead previous holder
  ///   is not an error here, the guard's owner_died() says it.
  template <asio::completion_token_for<void(error_code, lock_guard<Derived>)> Token = default_token>
  auto async_guard(Token&& token = {}) {
    return initiate<void(error_code, lock_guard<Derived>)>(
        sync_operation::acquire, std::forward<Token>(token),
        [self = static_cast<const Derived&>(*this)](auto&& handler, error_code ec, std::size_t) {
          if (ec && ec != errc::owner_died) return std::move(handler)(ec, lock_guard<Derived>());
          std::move(handler)(error_code(), lock_guard<Derived>(self, adopt_lock, ec == errc::owner_died));
        });
  }

 protected:
  using sync_handle::sync_handle;
  acquirable() noexcept = default;
};

}  // namespace detail

/// Holds a lock, rlock, semaphore or condition, and releases it when destroyed (RAII), for
/// blocking (`lock_guard g(l);`) and awaitable (`auto g = co_await l.async_guard();`) acquires.
/// It keeps its own copy of the handle. Movable, not copyable. Release where it was acquired: a
/// blocking acquire of an rlock belongs to its thread.
template <typename Lockable>
class lock_guard {
 public:
  lock_guard() noexcept = default;
  /// Blocks until acquired; a dead previous holder is recorded in owner_died(), not thrown.
  explicit lock_guard(const Lockable& lockable) : held_(lockable) {
    error_code ec;
    held_.acquire(ec);
    owner_died_ = ec == errc::owner_died;
    if (ec && !owner_died_) {
      held_ = Lockable();
      detail::throw_error(ec, "acquire");
    }
    owns_ = true;
  }
  /// Waits at most `timeout`; owns() is false if it was not acquired.
  lock_guard(const Lockable& lockable, std::chrono::milliseconds timeout) : held_(lockable) {
    try {
      owns_ = held_.acquire(timeout);
    } catch (const boost::system::system_error& e) {
      if (e.code() != errc::owner_died) throw;
      owns_ = owner_died_ = true;
    }
    if (!owns_) held_ = Lockable();
  }
  /// Takes over `lockable`, which the caller holds.
  lock_guard(const Lockable& lockable, adopt_lock_t, bool owner_died = false) noexcept
      : held_(lockable), owns_(true), owner_died_(owner_died) {}

  lock_guard(lock_guard&& other) noexcept
      : held_(std::move(other.held_)), owns_(std::exchange(other.owns_, false)), owner_died_(other.owner_died_) {}
  lock_guard& operator=(lock_guard&& other) noexcept {
    if (this != &other) {
      unlock_quietly();
      held_ = std::move(other.held_);
      owns_ = std::exchange(other.owns_, false);
      owner_died_ = other.owner_died_;
    }
    return *this;
  }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;
  ~lock_guard() { unlock_quietly(); }

  bool owns() const noexcept { return owns_; }
  explicit operator bool() const noexcept { return owns(); }
  /// The previous holder died holding it: what it protects may be half-updated.
  bool owner_died() const noexcept { return owner_died_; }
  /// Releases now (throws what release() throws).
  void unlock() {
    if (!owns_) return;
    owns_ = false;
    Lockable l = std::exchange(held_, Lockable());
    l.release();
  }
  /// The primitive held (a copy of the handle), if any.
  Lockable* get() noexcept { return owns_ ? &held_ : nullptr; }

 private:
  void unlock_quietly() noexcept {
    if (!owns_) return;
    owns_ = false;
    error_code ignored;
    held_.release(ignored);
    held_ = Lockable();
  }

  // A plain member, not an optional: g++ 12 at -O3 warns that an empty optional's handle "may
  // be used uninitialized" (a false positive, -Wmaybe-uninitialized).
  Lockable held_;
  bool owns_ = false;
  bool owner_died_ = false;
};

/// Python's `multiprocessing.Lock`: one holder at a time, across processes and threads.
///
/// Unlike Python's, it has an owner: only the process that holds it may release it
/// (errc::not_owner otherwise), and when that process dies holding it, the next acquirer gets
/// errc::owner_died and holds it. Acquiring it again in the holding process waits (deadlock),
/// as in Python; use rlock for re-entry. Copies share the lock.
/// @par Thread safety Distinct and shared objects: safe.
class lock : public detail::acquirable<lock> {
  friend class lock_guard<lock>;
  lock() noexcept = default;  // empty, for lock_guard

 public:
  explicit lock(const executor_type& ex) : acquirable(ex, detail::sync_kind::lock, 0) {}
  /// Whether some process holds it.
  bool locked() const noexcept { return owner() != 0; }
  /// The pid of the holder, 0 if free.
  int owner() const noexcept { return status().owner; }
};

/// Python's `multiprocessing.RLock`: the holding thread may acquire it again and must release
/// it as often. An awaitable acquisition is never re-entrant (an event loop runs many coroutines
/// on one thread, and a lock that let them all in would exclude none of them): it belongs to
/// the process and any of its threads may release it.
class rlock : public detail::acquirable<rlock> {
  friend class lock_guard<rlock>;
  rlock() noexcept = default;  // empty, for lock_guard

 public:
  explicit rlock(const executor_type& ex) : acquirable(ex, detail::sync_kind::rlock, 0) {}
  int owner() const noexcept { return status().owner; }
  /// How many times the holder has acquired it (0 if free).
  unsigned depth() const noexcept { return status().value; }
};

/// Python's `multiprocessing.Semaphore`: a counter of `value` units; acquire takes one, waiting
/// while none is left; release gives one back (any process may). No owner, so a process that
/// dies holding units does not give them back.
class semaphore : public detail::acquirable<semaphore> {
  friend class lock_guard<semaphore>;
  semaphore() noexcept = default;  // empty, for lock_guard

 public:
  explicit semaphore(const executor_type& ex, unsigned value = 1)
      : acquirable(ex, detail::sync_kind::semaphore, value) {}
  /// Units left now (Python's get_value()).
  unsigned value() const noexcept { return status().value; }
};

/// Python's `multiprocessing.BoundedSemaphore`: a semaphore whose release above its initial
/// value is an error (errc::invalid_argument, Python's ValueError).
class bounded_semaphore : public detail::acquirable<bounded_semaphore> {
  friend class lock_guard<bounded_semaphore>;
  bounded_semaphore() noexcept = default;  // empty, for lock_guard

 public:
  explicit bounded_semaphore(const executor_type& ex, unsigned value = 1)
      : acquirable(ex, detail::sync_kind::bounded_semaphore, value) {}
  unsigned value() const noexcept { return status().value; }
};

/// Python's `multiprocessing.Event`: a flag that waits wait for. A wait in progress when the
/// flag is set returns, even if it is cleared again at once.
class event : public detail::sync_handle {
 public:
  explicit event(const executor_type& ex) : sync_handle(ex, detail::sync_kind::event, 0) {}

  bool is_set() const noexcept { return status().value != 0; }
  /// Waits in progress now, blocking and awaited, in every process (a process killed while
  /// waiting stays counted).
  std::size_t n_waiting() const noexcept { return status().waiting; }
  /// Sets the flag and wakes every waiter, in every process.
  void set() { detail::event_set(core("set")); }
  void clear() { detail::event_clear(core("clear")); }

  /// Blocks until the flag is set.
  void wait() {
    std::size_t ignored;
    check(detail::sync_wait(core("wait"), std::nullopt, ignored), "wait");
  }
  /// Waits at most `timeout`; returns the flag (Python's wait(timeout)).
  bool wait(std::chrono::milliseconds timeout) {
    std::size_t ignored;
    return !detail::sync_wait(core("wait"), timeout, ignored) || is_set();
  }

  /// @par Completion signature `void(error_code)`.
  /// @par Cancellation terminal, partial, total: stops waiting.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_wait(Token&& token = {}) {
    return initiate_void(detail::sync_operation::wait, std::forward<Token>(token));
  }
};

/// Python's `multiprocessing.Condition`: a lock of its own (acquire, release, lock_guard) and
/// waits for notifications. wait() must be called holding the lock: it releases it, waits for a
/// notify, and takes it again before it returns — also after a timeout or a cancellation.
/// notify(n) wakes up to `n` of the processes and coroutines waiting at the time; notify_all()
/// every one of them. Spurious wake-ups do not happen, but use wait_for(predicate) as in
/// Python: another process may change the state between the notify and the wake-up. A waiter
/// that dies while waiting is not counted: the next notify drops a wake-up it left unused rather
/// than give it to a waiter that came later (docs/reference/sync.md says the limits).
class condition : public detail::acquirable<condition> {
  friend class lock_guard<condition>;
  condition() noexcept = default;  // empty, for lock_guard

 public:
  explicit condition(const executor_type& ex) : acquirable(ex, detail::sync_kind::condition, 0) {}
  /// The pid of the process holding its lock, 0 if free.
  int owner() const noexcept { return status().owner; }

  /// errc::not_owner without the lock.
  void wait() {
    std::size_t ignored;
    check(detail::sync_wait(core("wait"), std::nullopt, ignored), "wait");
  }
  /// False if `timeout` passed without a notify (Python's wait(timeout)); the lock is held again.
  bool wait(std::chrono::milliseconds timeout) {
    std::size_t ignored;
    const error_code ec = detail::sync_wait(core("wait"), timeout, ignored);
    if (ec == errc::timed_out) return false;
    check(ec, "wait");
    return true;
  }
  /// Waits until `predicate()` is true (checked first, and after each wake-up, holding the lock).
  template <typename Predicate>
  void wait_for(Predicate predicate) {
    while (!predicate()) wait();
  }
  /// As above, at most `timeout` in all; returns the last value of `predicate()`.
  template <typename Predicate>
  bool wait_for(Predicate predicate, std::chrono::milliseconds timeout) {
    const detail::countdown remaining(timeout);
    while (!predicate()) {
      const std::chrono::milliseconds left = remaining.left();
      if (left.count() <= 0 || !wait(left)) return predicate();
    }
    return true;
  }

  /// The awaitable wait; the lock is held again when it completes, also with operation_aborted.
  /// @par Completion signature `void(error_code)`: errc::not_owner without the lock.
  /// @par Cancellation terminal, partial, total: stops waiting, takes the lock again, then
  ///   completes with operation_aborted (a notify that came meanwhile still counts: success).
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_wait(Token&& token = {}) {
    return initiate_void(detail::sync_operation::wait, std::forward<Token>(token));
  }

  /// Wakes up to `count` waiters. errc::not_owner without the lock.
  void notify(std::size_t count = 1) { check(detail::condition_notify(core("notify"), count, false), "notify"); }
  void notify_all() { check(detail::condition_notify(core("notify_all"), 0, true), "notify_all"); }
};

/// Python's `multiprocessing.Barrier`: `parties` callers wait until all of them have arrived,
/// then all go on; it is then ready for the next round. A wait that times out or is cancelled,
/// and abort(), break it: every wait in progress and every later one fails with
/// errc::broken_barrier until reset().
class barrier : public detail::sync_handle {
 public:
  barrier(const executor_type& ex, std::size_t parties)
      : sync_handle(ex, detail::sync_kind::barrier, parties) {}

  /// Blocks until every party has arrived; returns this caller's index, 0 to parties - 1 (the
  /// last to arrive gets parties - 1). Throws errc::broken_barrier.
  std::size_t wait() {
    std::size_t index = 0;
    check(detail::sync_wait(core("wait"), std::nullopt, index), "wait");
    return index;
  }
  /// As above; after `timeout` it breaks the barrier and throws errc::timed_out (the others get
  /// errc::broken_barrier).
  std::size_t wait(std::chrono::milliseconds timeout) {
    std::size_t index = 0;
    check(detail::sync_wait(core("wait"), timeout, index), "wait");
    return index;
  }

  /// @par Completion signature `void(error_code, std::size_t index)`.
  /// @par Cancellation terminal, partial, total: breaks the barrier (as a timeout does).
  template <asio::completion_token_for<void(error_code, std::size_t)> Token = default_token>
  auto async_wait(Token&& token = {}) {
    return initiate<void(error_code, std::size_t)>(
        detail::sync_operation::wait, std::forward<Token>(token),
        [](auto&& handler, error_code ec, std::size_t index) { std::move(handler)(ec, index); });
  }

  /// Back to the empty state; waits in progress fail with errc::broken_barrier.
  void reset() { detail::barrier_reset(core("reset")); }
  /// Breaks it: waits in progress and later ones fail with errc::broken_barrier until reset().
  void abort() { detail::barrier_abort(core("abort")); }

  std::size_t parties() const noexcept { return status().value; }
  /// Parties waiting now.
  std::size_t n_waiting() const noexcept { return status().waiting; }
  bool broken() const noexcept { return status().broken; }
};

}  // namespace herd
