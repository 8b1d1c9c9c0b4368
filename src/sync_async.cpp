// The awaitable forms of herd's synchronization primitives: a small state machine per operation,
// run on the caller's executor. When it must wait, it hands (word, expected value) to the waiter
// thread (detail/futex.hpp), which resumes it once the word may have changed; it then looks again.
// Cancellation forgets the pending wait and undoes what the operation had registered.
#include "detail/sync_primitive.hpp"

#include <herd/error.hpp>

#include "detail/futex.hpp"
#include "detail/post_completion.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <atomic>
#include <memory>
#include <optional>

namespace herd::detail {
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
        if (phase_ == 1) c.waiters().abandon_wait(ticket_, slot_, c.waiters().claim(ticket_, slot_));
        if (phase_ == 2) c.waiters().abandon_wait(ticket_, slot_, woken_);
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
    std::optional<deadline_clock::time_point> recheck;
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
        return wait_plan{&c.s->lock_word, v, deadline_clock::now() + owner_check};
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
    return wait_plan{&s.value, 0, deadline_clock::now() + owner_check};
  }

  std::optional<wait_plan> wait_event(bool cancelled) {
    auto& s = *core_->s;
    if (!registered_) {
      seen_ = s.generation.load();
      if (s.flag.load()) return finish({});
      registered_ = true;
      s.waiters.fetch_add(1);
    }
    if (event_wait_over(s.flag.load(), s.generation.load(), seen_)) return finish_registered({});
    if (cancelled) return finish_registered(asio::error::operation_aborted);
    return wait_plan{&s.generation, seen_, std::nullopt};
  }

  std::optional<wait_plan> wait_condition(bool cancelled) {
    auto& c = *core_;
    enum { starting, waiting, relocking };
    if (phase_ == starting) {
      if (!c.holds_lock()) return finish(errc::not_owner);
      ticket_ = c.waiters().take_ticket(slot_);
      c.unlock(async_tag);
      phase_ = waiting;
    }
    if (phase_ == waiting) {
      const std::uint32_t seen = c.s->generation.load();
      woken_ = c.waiters().claim(ticket_, slot_);
      if (!woken_ && !cancelled) return wait_plan{&c.s->generation, seen, std::nullopt};
      aborted_ = cancelled && !woken_;
      phase_ = relocking;
      cancellable_ = false;  // from here the lock must be taken again, cancelled or not
    }
    // The lock again, cancelled or not: a condition's wait returns holding it.
    if (auto plan = take_lock()) return plan;
    const bool woken = c.waiters().finish_wait(ticket_, slot_, woken_);
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
      return finish(barrier_give_up_result(c.s->broken_generations.load(), seen_, asio::error::operation_aborted));
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
