#include "futex.hpp"

#include "fork_lock.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <list>
#include <mutex>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace herd::detail {
namespace {

timespec to_monotonic_timespec(deadline_clock::time_point t) {
  // libstdc++'s steady_clock is CLOCK_MONOTONIC.
  const auto since = t.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since - seconds);
  timespec ts{};
  ts.tv_sec = seconds.count() < 0 ? 0 : static_cast<time_t>(seconds.count());
  ts.tv_nsec = seconds.count() < 0 ? 0 : static_cast<long>(nanos.count());
  return ts;
}

std::uint32_t* address(const std::atomic<std::uint32_t>& word) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                    std::atomic<std::uint32_t>::is_always_lock_free,
                "futex words must be plain lock-free 32-bit atomics");
  return reinterpret_cast<std::uint32_t*>(const_cast<std::atomic<std::uint32_t>*>(&word));
}

}  // namespace

bool futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                deadline deadline) noexcept {
  if (deadline_passed(deadline, deadline_clock::now())) return false;
  timespec ts{};
  if (deadline) ts = to_monotonic_timespec(*deadline);
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline; not FUTEX_PRIVATE_FLAG: the
  // word lives in memory shared with other processes.
  const long r = ::syscall(SYS_futex, address(word), FUTEX_WAIT_BITSET, expected, deadline ? &ts : nullptr, nullptr,
                           FUTEX_BITSET_MATCH_ANY);
  if (r != 0 && errno == ETIMEDOUT) return false;
  return true;
}

void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept {
  ::syscall(SYS_futex, address(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

// ---------------------------------------------------------------------------------------------
// The waiter thread: one per process, started by the first asynchronous wait. It sleeps in
// futex_waitv (Linux 5.16) on every word an operation of this process awaits, plus a private
// control word that new and cancelled waits bump, and posts each operation's continuation to
// its executor. The operation itself runs there, never on this thread.

namespace {

struct waitv_entry {  // struct futex_waitv (linux/futex.h, 5.16)
  std::uint64_t val;
  std::uint64_t uaddr;
  std::uint32_t flags;
  std::uint32_t reserved;
};
constexpr std::size_t max_waitv = 128;  // FUTEX_WAITV_MAX
#ifndef SYS_futex_waitv
constexpr long SYS_futex_waitv = 449;
#endif

struct pending_wait {
  std::uint64_t id;
  const std::atomic<std::uint32_t>* word;
  std::uint32_t expected;
  deadline recheck;
  asio::execution_context* context;
  asio::any_io_executor executor;
  asio::any_completion_handler<void(error_code)> resume;
};

struct waiter_service {
  std::mutex mutex;
  // A list: erasing from it moves no entry (Boost 1.81's any_completion_handler must never be
  // move-assigned: it wraps itself and a later call overflows the stack).
  std::list<pending_wait> waits;
  std::uint64_t next_id = 1;
  std::atomic<std::uint32_t> control{0};
  int owner = 0;              // the process it serves
  bool polling_only = false;  // futex_waitv is not available here

  void poke() {
    control.fetch_add(1, std::memory_order_release);
    ::syscall(SYS_futex, address(control), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, nullptr, 0);
  }

  static void resume(pending_wait& w, error_code ec) {
    const asio::any_io_executor ex = w.executor;
    asio::post(ex, asio::append(std::move(w.resume), ec));
  }

  [[noreturn]] void run() {
    std::vector<waitv_entry> entries;
    for (;;) {
      entries.clear();
      deadline wake_at;
      {
        std::lock_guard guard(mutex);
        entries.push_back({control.load(std::memory_order_acquire), reinterpret_cast<std::uint64_t>(address(control)),
                           FUTEX_32 | FUTEX_PRIVATE_FLAG, 0});
        for (const pending_wait& w : waits) {
          if (w.recheck && (!wake_at || *w.recheck < *wake_at)) wake_at = w.recheck;
          if (entries.size() < max_waitv)
            entries.push_back({w.expected, reinterpret_cast<std::uint64_t>(address(*w.word)), FUTEX_32, 0});
        }
        // More words than one futex_waitv takes: look at all of them every millisecond.
        if (waits.size() + 1 > max_waitv) {
          const auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
          if (!wake_at || soon < *wake_at) wake_at = soon;
        }
      }
      timespec ts{};
      if (wake_at) ts = to_monotonic_timespec(*wake_at);
      const long r = polling_only ? 0
                                  : ::syscall(SYS_futex_waitv, entries.data(), entries.size(), 0,
                                              wake_at ? &ts : nullptr, CLOCK_MONOTONIC);
      // Kernels before 5.16 (ENOSYS), or a seccomp profile that refuses the call (EPERM): look
      // every millisecond instead of sleeping on the words.
      if (r < 0 && errno != EAGAIN && errno != ETIMEDOUT && errno != EINTR) polling_only = true;
      if (polling_only) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const std::uint64_t woken = r > 0 && static_cast<std::size_t>(r) < entries.size() ? entries[r].uaddr : 0;
      std::lock_guard guard(mutex);
      const auto now = std::chrono::steady_clock::now();
      bool claimed = woken == 0 || woken == reinterpret_cast<std::uint64_t>(address(control));
      std::erase_if(waits, [&](pending_wait& w) {
        const bool is_woken = reinterpret_cast<std::uint64_t>(address(*w.word)) == woken;
        const bool due = is_woken || w.word->load(std::memory_order_acquire) != w.expected ||
                         (w.recheck && now >= *w.recheck);
        claimed = claimed || is_woken;
        if (due) resume(w, error_code());
        return due;
      });
      // Woken for a wait cancelled meanwhile: the wake-up belongs to another waiter.
      if (!claimed)
        ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(woken), FUTEX_WAKE, 1, nullptr, nullptr, 0);
    }
  }
};

// An execution context that shuts down (an io_context being destroyed) takes its pending waits
// with it: their handlers are destroyed, as Asio destroys the handlers of its own pending
// operations, and nothing is ever posted to it afterwards.
class context_guard : public asio::execution_context::service {
 public:
  static asio::execution_context::id id;
  explicit context_guard(asio::execution_context& context) : asio::execution_context::service(context) {}
  void shutdown() override;
};
asio::execution_context::id context_guard::id;

// Per process: a forked child has no waiter thread, and its copy of the parent's service (whose
// mutex the thread may have held at the fork) is never touched; it makes its own. No lock here:
// a fork while another thread held one would leave the child's copy locked for good.
std::atomic<waiter_service*> current_service{nullptr};

waiter_service* existing_waiter() noexcept {
  waiter_service* s = current_service.load(std::memory_order_acquire);
  return s && s->owner == current_pid() ? s : nullptr;
}

waiter_service& process_waiter() {
  if (waiter_service* s = existing_waiter()) return *s;
  auto* fresh = new waiter_service;  // never destroyed: the thread runs until the process ends
  fresh->owner = current_pid();
  waiter_service* seen = current_service.load(std::memory_order_acquire);
  while (!(seen && seen->owner == current_pid())) {
    if (current_service.compare_exchange_weak(seen, fresh, std::memory_order_acq_rel)) {
      std::thread([fresh] { fresh->run(); }).detach();
      return *fresh;
    }
  }
  delete fresh;  // another thread of this process made one first
  return *seen;
}

}  // namespace

void context_guard::shutdown() {
  waiter_service* service = existing_waiter();
  if (!service) return;  // no wait was ever made in this process
  auto& s = *service;
  std::list<pending_wait> gone;
  {
    std::lock_guard guard(s.mutex);
    for (auto it = s.waits.begin(); it != s.waits.end();) {
      const auto next = std::next(it);
      if (it->context == &context()) gone.splice(gone.end(), s.waits, it);
      it = next;
    }
  }
  gone.clear();  // outside the lock: a handler's destructor may cancel another wait
}

void async_futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                      deadline recheck, const asio::any_io_executor& ex,
                      asio::any_completion_handler<void(error_code)> resume, std::atomic<std::uint64_t>& id_out) {
  asio::execution_context& context = asio::query(ex, asio::execution::context);
  asio::use_service<context_guard>(context);
  auto& s = process_waiter();
  {
    std::lock_guard guard(s.mutex);
    const std::uint64_t id = s.next_id++;
    id_out = id;
    s.waits.push_back({id, &word, expected, recheck, &context, ex, std::move(resume)});
  }
  s.poke();
}

bool cancel_async_wait(std::uint64_t id) noexcept {
  waiter_service* service = existing_waiter();
  if (!service) return false;
  auto& s = *service;
  bool found = false;
  {
    std::lock_guard guard(s.mutex);
    for (auto it = s.waits.begin(); it != s.waits.end(); ++it)
      if (it->id == id) {
        waiter_service::resume(*it, asio::error::operation_aborted);
        s.waits.erase(it);
        found = true;
        break;
      }
  }
  if (found) s.poke();
  return found;
}

}  // namespace herd::detail
