#include "pool_worker.hpp"
#include "travelling_child.hpp"

#include "code_ref.hpp"
#include "descriptors.hpp"
#include "fork_child.hpp"
#include "fork_lock.hpp"
#include "spawn_process.hpp"
#include "futex.hpp"
#include "worker_link.hpp"

#include <herd/detail/travelling_call.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cerrno>
#include <chrono>
#include <optional>
#include <vector>

#include <cstdio>
#include <cstdlib>

#include <poll.h>
#include <sys/prctl.h>
#include <unistd.h>

namespace herd::detail {

coroutine_host*& current_coroutine_host() noexcept {
  static coroutine_host* host = nullptr;
  return host;
}

namespace {

std::int64_t steady_now_ns() noexcept { return std::chrono::steady_clock::now().time_since_epoch().count(); }

// One worker's side of its link: what it reads, what it answers, and when it wakes the parent.
class worker_session {
 public:
  explicit worker_session(const worker_start& start)
      : start_(start),
        link_(link_memory::map(start.memory, start.ring_capacity)),
        control_(link_.control()),
        inbox_(&link_.to_worker()),
        outbox_(&link_.to_parent()) {
    ::close(start.memory);
  }

  void ready() { control_.ready.store(1, std::memory_order_release); }

  // One task at a time, in this thread: the plain loop, and the fastest.
  void serve_one_at_a_time() {
    std::string result;
    std::size_t taken = 0;
    for (;;) {
      link_header header;
      std::string_view payload;
      if (!inbox_.next(header, payload)) {
        // The parts of a large task taken so far made room the parent may be waiting for, and
        // answers told later than written must be told before this worker waits.
        tell_parent_about_room();
        if (untold_ != 0) tell_parent();
        wait_for_parent([&] { return !link_.to_worker().empty(); });
        continue;
      }
      if (header.kind == link_kind::quit) break;
      if (header.kind != link_kind::task) {
        inbox_.release();
        continue;
      }
      publish_running(0, header.task);
      link_header answer{header.task, link_kind::value, 0, 0, 0};
      result.clear();
      if (take_withdrawal(header.task)) {
        answer.kind = link_kind::skipped;
      } else {
        const auto began = std::chrono::steady_clock::now();
        run_trampoline(header, payload, answer, result);
        answer.a = elapsed_ns(began);
      }
      inbox_.release();
      tell_parent_about_room();
      finish(0, answer, result);
      // The quota counts every task sent, skipped or not: the parent sends no more than that.
      if (start_.quota != 0 && ++taken >= start_.quota) break;
    }
  }

  // Up to `limit` coroutine tasks at once on this worker's io_context (other tasks still run
  // one at a time, inline). The parent's wake-ups arrive through the same io_context.
  void serve_concurrently(std::size_t limit) {
    asio::io_context io(1);
    asio::posix::stream_descriptor wake(io, start_.wake_me);
    std::vector<std::optional<asio::cancellation_signal>> slots(limit);
    std::size_t running = 0;
    std::size_t taken = 0;
    bool quitting = false;
    bool waiting = false;
    std::string result;

    struct host final : coroutine_host {
      std::optional<asio::awaitable<std::string>> task;
      void adopt(asio::awaitable<std::string> t) override { task.emplace(std::move(t)); }
    } adopter;
    current_coroutine_host() = &adopter;

    const auto can_take = [&] { return !quitting && running < limit && !link_.to_worker().empty(); };
    const auto take = [&](const link_header& header, std::string_view payload) {
      std::size_t slot = 0;
      while (slots[slot]) ++slot;
      publish_running(slot, header.task);
      link_header answer{header.task, link_kind::value, 0, 0, 0};
      result.clear();
      if (take_withdrawal(header.task)) {
        answer.kind = link_kind::skipped;
        inbox_.release();
        finish(slot, answer, result);
        return;
      }
      const auto began = std::chrono::steady_clock::now();
      adopter.task.reset();
      run_trampoline(header, payload, answer, result);
      inbox_.release();
      if (!adopter.task) {
        answer.a = elapsed_ns(began);
        finish(slot, answer, result);
        return;
      }
      ++running;
      auto& cancel = slots[slot].emplace();
      asio::co_spawn(io, std::move(*adopter.task),
                     asio::bind_cancellation_slot(cancel.slot(), [&, slot, answer, began](std::exception_ptr error,
                                                                                          std::string bytes) mutable {
                       if (error) {
                         answer.kind = link_kind::exception;
                         bytes = exception_record(error);
                       }
                       answer.a = elapsed_ns(began);
                       slots[slot].reset();
                       --running;
                       finish(slot, answer, bytes);
                     }));
      adopter.task.reset();
    };
    // The parent cancels a running coroutine task by writing its id in a withdrawal slot.
    const auto take_cancellations = [&] {
      if (running == 0) return;
      for (std::size_t slot = 0; slot < limit; ++slot) {
        if (!slots[slot]) continue;
        if (take_withdrawal(control_.running[slot].load(std::memory_order_relaxed)))
          slots[slot]->emit(asio::cancellation_type::terminal);
      }
    };

    for (;;) {
      link_header header;
      std::string_view payload;
      while (!quitting && running < limit && inbox_.next(header, payload)) {
        if (header.kind == link_kind::quit) {
          quitting = true;
        } else if (header.kind == link_kind::task) {
          take(header, payload);
          if (start_.quota != 0 && ++taken >= start_.quota) quitting = true;
          continue;
        }
        inbox_.release();
      }
      tell_parent_about_room();
      take_cancellations();
      io.poll();
      if (io.stopped()) io.restart();
      if (quitting && running == 0) break;
      if (can_take()) continue;
      // Nothing to do until the parent writes or a coroutine can go on. The wait is pending
      // before the eventfd is emptied and the ring read again: a wake-up after either is seen.
      if (untold_ != 0) tell_parent();
      if (!waiting) {
        waiting = true;
        wake.async_wait(asio::posix::descriptor_base::wait_read, [&](error_code) { waiting = false; });
      }
      control_.worker_sleeping.store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // the flag before the ring is read
      eventfd_drain(start_.wake_me);
      if (!can_take()) io.run_one();
      control_.worker_sleeping.store(0, std::memory_order_relaxed);
    }
    current_coroutine_host() = nullptr;
    wake.release();
  }

 private:
  static std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point began) noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - began).count());
  }

  static std::string exception_record(const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (...) {
      return current_exception_record();
    }
  }

  // Published before the withdrawals are read, and read by the parent after it publishes one
  // (both sequentially consistent): one of the two sides sees the other.
  void publish_running(std::size_t slot, std::uint64_t task) noexcept {
    control_.started_ns[slot].store(steady_now_ns(), std::memory_order_relaxed);
    control_.running[slot].store(task, std::memory_order_seq_cst);
  }

  // The parent asked to skip `task` (cancelled before it started): takes the request.
  bool take_withdrawal(std::uint64_t task) noexcept {
    if (task == 0) return false;
    for (auto& slot : control_.withdrawn) {
      std::uint64_t expected = task;
      if (slot.load(std::memory_order_seq_cst) == task && slot.compare_exchange_strong(expected, 0)) return true;
    }
    return false;
  }

  void run_trampoline(const link_header& header, std::string_view payload, link_header& answer, std::string& result) {
    try {
      std::uint64_t entry = header.a, callable = header.b;
      if (start_.addresses != nullptr) {
        entry = start_.addresses->translate(entry);
        if (callable != 0) callable = start_.addresses->translate(callable);
      }
      reinterpret_cast<task_entry>(static_cast<std::uintptr_t>(entry))(callable, payload, result);
    } catch (...) {
      answer.kind = link_kind::exception;
      result = current_exception_record();
    }
  }

  // The slot is cleared once the answer is out: a worker dying in between leaves the task
  // counted as answered, not as never started (which would run it twice).
  void finish(std::size_t slot, const link_header& answer, std::string_view result) {
    send(answer, result);
    control_.running[slot].store(0, std::memory_order_release);
  }

  // Sleeps on the worker's eventfd until the parent wakes it, unless `ready()` turns true first:
  // a short spin first (yielding, the parent may share this CPU), because a pool's next task
  // usually follows within microseconds and a sleep and wake-up cost ~20 µs each on a VM.
  template <typename Ready>
  void wait_for_parent(Ready&& ready) {
    if (spin_until(ready, std::chrono::microseconds(50), true)) return;
    control_.worker_sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the store before ready() reads the ring
    if (!ready()) {
      pollfd p{start_.wake_me, POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    }
    control_.worker_sleeping.store(0, std::memory_order_relaxed);
    eventfd_drain(start_.wake_me);
  }

  void tell_parent() {
    untold_ = 0;
    untold_ns_ = 0;
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the ring's head before the flag is read
    if (control_.parent_armed.load(std::memory_order_relaxed) != 0 && control_.parent_armed.exchange(0) != 0)
      eventfd_add(start_.wake_parent, 1);
  }

  // While more tasks wait in the inbox, answers are told in groups: each wake-up of the parent
  // costs both sides system calls and a context switch, ~10-20 µs on a VM. The inbox holds
  // about 1 ms of work (what the scheduler sends ahead), and the parent refills it when told:
  // told after 400 µs of work at most, it refills before the inbox runs dry.
  void tell_parent_soon(std::uint64_t run_ns) {
    untold_ns_ += run_ns;
    if (++untold_ >= 8 || untold_ns_ >= 400'000 || link_.to_worker().empty()) tell_parent();
  }

  void tell_parent_about_room() {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the ring's tail before the flag is read
    if (control_.parent_wants_room.load(std::memory_order_relaxed) != 0 && control_.parent_wants_room.exchange(0) != 0)
      eventfd_add(start_.wake_parent, 1);
  }

  void send(const link_header& header, std::string_view payload) {
    bool sent = outbox_.write(header, payload);
    if (sent)
      tell_parent_soon(header.a);
    else
      tell_parent();
    // A large answer goes in parts, as the parent makes room; each part written is told.
    const auto more = [&] {
      const bool all = outbox_.pump();
      tell_parent();
      return all;
    };
    while (!sent) {
      wait_for_parent(more);
      sent = more();
    }
  }

  const worker_start& start_;
  link_memory link_;
  link_control& control_;
  message_reader inbox_;
  message_writer outbox_;
  std::size_t untold_ = 0;        // answers written since the parent was last told
  std::uint64_t untold_ns_ = 0;  // the time the worker spent on them
};

}  // namespace

std::string spawned_worker_role(int parent, const std::string& name, const worker_start& start) {
  return "pool-worker " + std::to_string(parent) + " " + std::to_string(start.ring_capacity) + " " +
         std::to_string(start.quota) + " " + std::to_string(start.concurrency) + " " +
         (start.initializer ? "1" : "0") + " " + name;
}

bool parse_spawned_worker_role(std::string_view role, int& parent, std::string& name, worker_start& start) {
  const std::string text(role);
  unsigned long long ring = 0, quota = 0, concurrency = 0;
  int initializer = 0, name_at = 0;
  if (std::sscanf(text.c_str(), "pool-worker %d %llu %llu %llu %d %n", &parent, &ring, &quota, &concurrency,
                  &initializer, &name_at) != 5 ||
      name_at <= 0 || ring == 0 || concurrency == 0 || (initializer != 0 && initializer != 1))
    return false;
  start.initializer = initializer == 1;
  name = text.substr(static_cast<std::size_t>(name_at));
  start.ring_capacity = ring;
  start.quota = quota;
  start.concurrency = concurrency;
  return true;
}

[[noreturn]] void run_pool_worker_role(std::string_view role, const address_map& addresses) noexcept {
  static int parent = 0;
  static std::string name;
  static worker_start start;
  if (!parse_spawned_worker_role(role, parent, name, start)) {
    std::fprintf(stderr, "herd: a spawned pool worker cannot read its role '%.*s'\n", static_cast<int>(role.size()),
                 role.data());
    std::_Exit(1);
  }
  // It dies with the pool's process, as a forked worker does.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != parent) std::_Exit(1);
  fork_state().process_name = &name;
  start.memory = spawned_first_fd;
  start.wake_me = spawned_first_fd + 1;
  start.wake_parent = spawned_first_fd + 2;
  start.addresses = &addresses;
  std::function<void()> initializer;
  if (start.initializer) {
    // Read now, run in the worker: what fails there (a garbled call, another build's code) is
    // the initializer's failure, which breaks the pool with its message.
    static const std::string call = read_call_memory(spawned_first_fd + 3);
    ::close(spawned_first_fd + 3);
    initializer = [&addresses] {
      std::string ignored;
      run_child_call(decode_child_call(call), addresses, ignored);
    };
  }
  auto body = [&](result_sink& sink) {
    run_pool_worker(start, initializer);
    sink.send_value({});
  };
  finish_child(spawned_channel_fd, child_body(body));
}

void run_pool_worker(const worker_start& start, const std::function<void()>& initializer) {
  worker_session session(start);
  if (initializer) initializer();
  session.ready();
  if (start.concurrency > 1)
    session.serve_concurrently(std::min(start.concurrency, max_worker_concurrency));
  else
    session.serve_one_at_a_time();
}

}  // namespace herd::detail
