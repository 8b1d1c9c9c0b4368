#include "pool_worker.hpp"

#include "descriptors.hpp"
#include "fork_child.hpp"
#include "futex.hpp"
#include "worker_link.hpp"

#include <herd/detail/pool_task.hpp>

#include <cerrno>
#include <chrono>

#include <poll.h>
#include <unistd.h>

namespace herd::detail {
namespace {

// Sleeps on the worker's eventfd until the parent wakes it, unless `ready()` turns true first:
// a short spin first (yielding, the parent may share this CPU), because a pool's next task
// usually follows within microseconds and a sleep and wake-up cost ~20 µs each on a VM.
template <typename Ready>
void wait_for_parent(link_control& control, int wake_me, Ready&& ready) {
  if (spin_until(ready, std::chrono::microseconds(50), true)) return;
  control.worker_sleeping.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // the store before ready() reads the ring
  if (!ready()) {
    pollfd p{wake_me, POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
  }
  control.worker_sleeping.store(0, std::memory_order_relaxed);
  eventfd_drain(wake_me);
}

// The parent asked to skip `task` (cancelled before it started): takes the request.
bool take_withdrawal(link_control& control, std::uint64_t task) {
  for (auto& slot : control.withdrawn) {
    std::uint64_t expected = task;
    if (slot.load(std::memory_order_seq_cst) == task && slot.compare_exchange_strong(expected, 0)) return true;
  }
  return false;
}

}  // namespace

void run_pool_worker(const worker_start& start, const std::function<void()>& initializer) {
  link_memory link = link_memory::map(start.memory, start.ring_capacity);
  ::close(start.memory);
  link_control& control = link.control();
  if (initializer) initializer();
  control.ready.store(1, std::memory_order_release);

  message_reader inbox(&link.to_worker());
  message_writer outbox(&link.to_parent());
  std::string result;
  std::size_t done = 0;
  // The message parts just sent: the parent may be asleep waiting for them.
  std::size_t untold = 0;  // answers written since the parent was last told
  const auto tell_parent = [&] {
    untold = 0;
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the ring's head before the flag is read
    if (control.parent_armed.load(std::memory_order_relaxed) != 0 && control.parent_armed.exchange(0) != 0)
      eventfd_add(start.wake_parent, 1);
  };
  // While more tasks wait in the inbox, answers are told in groups: each wake-up of the parent
  // costs both sides system calls and a context switch, ~10-20 µs on a VM. The inbox holds only
  // what the scheduler sends ahead (about 200 µs of work), so no answer waits longer than that.
  const auto tell_parent_soon = [&] {
    if (++untold >= 8 || link.to_worker().empty()) tell_parent();
  };
  const auto tell_parent_about_room = [&] {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the ring's tail before the flag is read
    if (control.parent_wants_room.load(std::memory_order_relaxed) != 0 && control.parent_wants_room.exchange(0) != 0)
      eventfd_add(start.wake_parent, 1);
  };
  const auto send = [&](const link_header& header, std::string_view payload) {
    bool sent = outbox.write(header, payload);
    if (sent)
      tell_parent_soon();
    else
      tell_parent();
    // A large answer goes in parts, as the parent makes room; each part written is told.
    const auto more = [&] {
      const bool all = outbox.pump();
      tell_parent();
      return all;
    };
    while (!sent) {
      wait_for_parent(control, start.wake_me, more);
      sent = more();
    }
  };

  for (;;) {
    link_header header;
    std::string_view payload;
    if (!inbox.next(header, payload)) {
      // The parts of a large task taken so far made room the parent may be waiting for, and
      // answers told later than written must be told before this worker waits.
      tell_parent_about_room();
      if (untold != 0) tell_parent();
      wait_for_parent(control, start.wake_me, [&] { return !link.to_worker().empty(); });
      continue;
    }
    if (header.kind == link_kind::quit) break;
    if (header.kind != link_kind::task) {
      inbox.release();
      continue;
    }
    // Published before the withdrawals are read, and read by the parent after it publishes one
    // (both sequentially consistent): one of the two sides sees the other.
    control.started_ns[0].store(std::chrono::steady_clock::now().time_since_epoch().count(),
                                std::memory_order_relaxed);
    control.running[0].store(header.task, std::memory_order_seq_cst);
    link_header answer{header.task, link_kind::value, 0, 0, 0};
    result.clear();
    if (take_withdrawal(control, header.task)) {
      answer.kind = link_kind::skipped;
    } else {
      const auto began = std::chrono::steady_clock::now();
      try {
        reinterpret_cast<task_entry>(static_cast<std::uintptr_t>(header.a))(header.b, payload, result);
      } catch (...) {
        answer.kind = link_kind::exception;
        result = current_exception_record();
      }
      answer.a = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - began).count());
    }
    inbox.release();
    tell_parent_about_room();
    // Cleared once the answer is out: a worker dying in between leaves the task counted as
    // answered, not as never started (which would run it twice).
    send(answer, result);
    control.running[0].store(0, std::memory_order_release);
    // The quota counts every task sent, skipped or not: the parent sends no more than that.
    if (start.quota != 0 && ++done >= start.quota) break;
  }
}

}  // namespace herd::detail
