#include <herd/sync.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/process.hpp>
#include <herd/shared.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstddef>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <random>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

constexpr auto tuple = asio::as_tuple(asio::deferred);

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer's runtime maps memory for its own bookkeeping as the loop runs (SIGSYS here
// otherwise); herd's fast path never maps memory, so allowing that much keeps the test honest.
constexpr long runtime_call = SYS_mmap;
// Nor can it start a thread (an awaiting child's waiter thread) in a child forked from a
// process that has threads: such children block instead.
constexpr bool children_may_await = false;
#else
constexpr long runtime_call = SYS_exit;
constexpr bool children_may_await = true;
#endif

// A seccomp filter that kills the whole process at any system call but write, exit and
// sigreturn (strict mode would kill only the calling thread, and a sanitizer's thread would keep
// the process alive).
bool forbid_system_calls() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 5, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 4, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigreturn, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(runtime_call), 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0;
}

asio::awaitable<void> sleep_for(asio::any_io_executor ex, std::chrono::milliseconds d) {
  asio::steady_timer timer(ex, d);
  co_await timer.async_wait(asio::deferred);
}

// Waits (event loop free) until `ready()`, however slow the machine; fails after 20 s.
template <typename Ready>
asio::awaitable<void> until(asio::any_io_executor ex, Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!ready()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    co_await sleep_for(ex, 2ms);
  }
}

// `workers` children each add 1 to a plain int in shared memory `rounds` times under `l`.
template <typename Lock>
asio::awaitable<long> locked_increments(asio::any_io_executor ex, int workers, int rounds) {
  Lock l(ex);
  herd::shared_value<long> total(ex, 0);
  std::vector<herd::process<void>> children;
  for (int w = 0; w < workers; ++w)
    children.push_back(herd::start(ex, [l, total, rounds]() mutable {
      for (int i = 0; i < rounds; ++i) {
        l.acquire();
        *total.get() += 1;  // not atomic: only the lock keeps the count exact
        l.release();
      }
    }));
  for (auto& c : children) {
    const herd::exit_status status = co_await c.async_join();
    CHECK(status.success());
  }
  co_return total.load();
}

// Takes `c`'s lock once `registered` has reached `n`, and returns holding it: the waiters that
// count themselves under the lock just before wait() are then all inside it (a wait registers
// and releases the lock in one step). Fails after 20 s.
asio::awaitable<herd::lock_guard<herd::condition>> guard_once_registered(asio::any_io_executor ex, herd::condition c,
                                                                          herd::shared_value<int> registered, int n) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    auto g = co_await c.async_guard();
    if (registered.load() >= n) co_return g;
    g.unlock();
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    co_await sleep_for(ex, 2ms);
  }
}

// A child that waits on `c` (blocking) until notified; true if a notify woke it (20 s at most).
herd::process<bool> condition_waiter(asio::any_io_executor ex, herd::condition c, herd::shared_value<int> registered,
                                     herd::shared_value<int> woken) {
  return herd::start(ex, [c, registered, woken]() mutable {
    herd::lock_guard g(c);
    registered.fetch_add(1);
    const bool notified = c.wait(20'000ms);
    if (notified) woken.fetch_add(1);
    return notified;
  });
}

// The same in a coroutine of this process (awaited).
void awaited_condition_waiter(asio::any_io_executor ex, herd::condition c, herd::shared_value<int> registered,
                              herd::shared_value<int> woken) {
  asio::co_spawn(ex, [c, registered, woken]() mutable -> asio::awaitable<void> {
    auto g = co_await c.async_guard();
    registered.fetch_add(1);
    auto [ec] = co_await herd::with_timeout(c.async_wait(), 20s, tuple);
    if (!ec) woken.fetch_add(1);
  }, asio::detached);
}

// `woken` reaches `n` and stays there a while (time for a wrong extra wake-up to show).
asio::awaitable<void> woken_exactly(asio::any_io_executor ex, herd::shared_value<int> woken, int n) {
  co_await until(ex, [&] { return woken.load() >= n; });
  co_await sleep_for(ex, 150ms);
  CHECK(woken.load() == n);
}

// Two live waiters arrive (`registered` reaches `registered_then`): notify() wakes exactly one of
// them, notify_all() the other; `woken_before` were woken earlier.
asio::awaitable<void> two_waiters_woken_one_then_all(asio::any_io_executor ex, herd::condition c,
                                                     herd::shared_value<int> registered,
                                                     herd::shared_value<int> woken, int registered_then,
                                                     int woken_before) {
  auto a = condition_waiter(ex, c, registered, woken);
  auto b = condition_waiter(ex, c, registered, woken);
  {
    auto g = co_await guard_once_registered(ex, c, registered, registered_then);
    c.notify();
  }
  co_await woken_exactly(ex, woken, woken_before + 1);
  {
    auto g = co_await c.async_guard();
    c.notify_all();
  }
  CHECK(co_await a.async_result());
  CHECK(co_await b.async_result());
  CHECK(woken.load() == woken_before + 2);
}

}  // namespace

TEST_SUITE("sync") {
  TEST_CASE("2 and 8 processes x 100,000 locked increments give the exact total") {
    leak_check guard;
    herd_test::run(
        [](asio::any_io_executor ex) -> asio::awaitable<void> {
          CHECK(co_await locked_increments<herd::lock>(ex, 2, 100'000) == 200'000);
          CHECK(co_await locked_increments<herd::lock>(ex, 8, 100'000) == 800'000);
          CHECK(co_await locked_increments<herd::rlock>(ex, 2, 100'000) == 200'000);
          CHECK(co_await locked_increments<herd::semaphore>(ex, 8, 20'000) == 160'000);  // value 1: a lock
        },
        300s);
  }

  TEST_CASE("2 and 8 processes x 100,000 atomic increments give the exact total") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (int workers : {2, 8}) {
        herd::shared_value<long> total(ex, 0);
        herd::shared_array<int> cells(ex, 4, 0);
        std::vector<herd::process<void>> children;
        for (int w = 0; w < workers; ++w)
          children.push_back(herd::start(ex, [total, cells]() mutable {
            for (int i = 0; i < 100'000; ++i) {
              total.fetch_add(1);
              cells.fetch_add(static_cast<std::size_t>(i % 4), 1);
            }
          }));
        for (auto& c : children) CHECK((co_await c.async_join()).success());
        CHECK(total.load() == 100'000L * workers);
        for (int c : cells) CHECK(c == 25'000 * workers);
      }
    });
  }

  TEST_CASE("the parent's coroutines and the children share a lock, the event loop never blocking") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::lock l(ex);
      herd::shared_value<long> total(ex, 0);
      herd::event holding(ex);
      auto child = herd::start(ex, [l, total, holding]() mutable {
        {
          // Held for 100 ms first, so the parent's first acquire surely waits (a fast machine
          // finishes the rest within one tick).
          herd::lock_guard g(l);
          holding.set();
          ::usleep(100'000);
        }
        for (int i = 0; i < 20'000; ++i) {
          herd::lock_guard g(l);
          *total.get() += 1;
        }
      });
      // A ticker shows the loop stays free while the parent waits for the lock. Its state is
      // shared: it outlives this coroutine by one tick.
      struct ticker_state {
        int ticks = 0;
        bool done = false;
      };
      auto ticker = std::make_shared<ticker_state>();
      asio::co_spawn(ex, [ticker, ex]() -> asio::awaitable<void> {
        while (!ticker->done) {
          co_await sleep_for(ex, 1ms);
          ++ticker->ticks;
        }
      }, asio::detached);
      co_await holding.async_wait();
      int ticks_while_waiting = 0;
      for (int i = 0; i < 2'000; ++i) {
        const int before = ticker->ticks;
        auto g = co_await l.async_guard();
        if (i == 0) ticks_while_waiting = ticker->ticks - before;
        *total.get() += 1;
      }
      CHECK((co_await child.async_join()).success());
      ticker->done = true;
      CHECK(total.load() == 22'000);
      CHECK(ticks_while_waiting > 10);  // the loop ran the ticker while the acquire waited 100 ms
    });
  }

  TEST_CASE("uncontended acquire and release make no system call") {
    leak_check guard;
    asio::io_context io;
    herd::lock l(io.get_executor());
    herd::rlock r(io.get_executor());
    herd::semaphore s(io.get_executor(), 3);
    herd::shared_value<long> v(io.get_executor(), 0);
    auto child = herd::start(io.get_executor(), [=]() mutable {
      // Warm up: the first rlock use learns this thread's id.
      r.acquire();
      r.release();
      // From here on any system call but write and exit kills the whole process.
      if (!forbid_system_calls()) ::syscall(SYS_exit_group, 3);
      for (int i = 0; i < 10'000; ++i) {
        l.acquire();
        l.release();
        r.acquire();
        r.acquire();
        r.release();
        r.release();
        s.acquire();
        s.release();
        if (!l.try_acquire()) ::syscall(SYS_exit_group, 4);
        l.release();
        v.fetch_add(1);
      }
      ::syscall(SYS_exit_group, v.load() == 10'000 ? 0 : 5);
    });
    const auto status = child.join();
    CHECK_MESSAGE(status.exited(), status.to_string());
    CHECK(status.code() == 0);
  }

  TEST_CASE("rlock re-entry, and releases by a process or thread that does not hold it") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::rlock r(ex);
      r.acquire();
      r.acquire();
      CHECK(r.depth() == 2);
      CHECK(r.owner() == ::getpid());
      // Another thread of this process cannot release this thread's hold, nor take it.
      std::thread other([&] {
        herd::error_code ec;
        r.release(ec);
        CHECK(ec == herd::errc::not_owner);
        CHECK_FALSE(r.try_acquire());
      });
      other.join();
      // Nor can another process.
      auto child = herd::start(ex, [r]() mutable {
        herd::error_code ec;
        r.release(ec);
        return ec == herd::errc::not_owner;
      });
      CHECK(co_await child.async_result());
      r.release();
      CHECK(r.depth() == 1);
      r.release();
      CHECK(r.owner() == 0);
      CHECK_THROWS_WITH_AS(r.release(), doctest::Contains("does not own"), boost::system::system_error);

      herd::lock l(ex);
      auto holder = herd::start(ex, [l]() mutable {
        l.acquire();
        herd::error_code ec;
        l.release(ec);  // its own: fine
        l.acquire();
        ::usleep(200'000);
        l.release();
      });
      co_await sleep_for(ex, 50ms);
      herd::error_code ec;
      l.release(ec);
      CHECK(ec == herd::errc::not_owner);  // the child holds it, not this process
      co_await l.async_acquire();
      l.release();
      co_await holder.async_join();

      herd::bounded_semaphore b(ex, 2);
      b.acquire();
      b.release();
      b.release(ec);
      CHECK(ec == herd::errc::invalid_argument);
      CHECK(b.value() == 2);
    });
  }

  TEST_CASE("a semaphore limits concurrency to its value") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::semaphore slots(ex, 3);
      herd::shared_value<int> holders(ex, 0);
      herd::shared_value<int> most(ex, 0);
      std::vector<herd::process<void>> children;
      for (int w = 0; w < 8; ++w)
        children.push_back(herd::start(ex, [slots, holders, most]() mutable {
          for (int i = 0; i < 200; ++i) {
            herd::lock_guard g(slots);
            const int now = holders.fetch_add(1) + 1;
            int seen = most.load();
            while (now > seen && !most.compare_exchange(seen, now)) {
            }
            ::usleep(50);
            holders.fetch_sub(1);
          }
        }));
      for (auto& c : children) CHECK((co_await c.async_join()).success());
      CHECK(most.load() == 3);
      CHECK(holders.load() == 0);
      CHECK(slots.value() == 3);
    });
  }

  TEST_CASE("a barrier of 8 processes holds over 1,000 rounds") {
    leak_check guard;
    herd_test::run(
        [](asio::any_io_executor ex) -> asio::awaitable<void> {
          constexpr int parties = 8, rounds = 1000;
          herd::barrier b(ex, parties);
          herd::shared_array<int> arrived(ex, rounds, 0);
          herd::shared_array<int> last(ex, rounds, 0);  // how many got index parties - 1
          std::vector<herd::process<int>> children;
          for (int w = 0; w < parties; ++w)
            children.push_back(herd::start(ex, [b, arrived, last]() mutable {
              for (int r = 0; r < rounds; ++r) {
                arrived.fetch_add(static_cast<std::size_t>(r), 1);
                const std::size_t index = b.wait();
                if (index == parties - 1) last.fetch_add(static_cast<std::size_t>(r), 1);
                if (arrived.load(static_cast<std::size_t>(r)) != parties) return r;  // passed too early
              }
              return -1;
            }));
          for (auto& c : children) CHECK(co_await c.async_result() == -1);
          for (int n : last) REQUIRE(n == 1);
          CHECK(b.n_waiting() == 0);
          CHECK_FALSE(b.broken());
        },
        300s);
  }

  TEST_CASE("a barrier: the parent awaits with children, a timeout breaks it, reset repairs it") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::barrier b(ex, 3);
      auto a = herd::start(ex, [b]() mutable { return b.wait(); });
      auto c = herd::start(ex, [b]() mutable { return b.wait(); });
      const std::size_t mine = co_await b.async_wait();
      const std::size_t ia = co_await a.async_result(), ic = co_await c.async_result();
      CHECK(mine + ia + ic == 0 + 1 + 2);

      // Two of three arrive; one times out: both see the barrier broken.
      auto waiting = herd::start(ex, [b]() mutable {
        herd::error_code ec;
        try {
          b.wait();
        } catch (const boost::system::system_error& e) {
          ec = e.code();
        }
        return ec == herd::errc::broken_barrier;
      });
      co_await until(ex, [&] { return b.n_waiting() == 1; });
      CHECK_THROWS_WITH_AS(b.wait(30ms), doctest::Contains("timed out"), boost::system::system_error);
      CHECK(co_await waiting.async_result());
      CHECK(b.broken());
      CHECK_THROWS_WITH_AS(b.wait(), doctest::Contains("broken"), boost::system::system_error);
      b.reset();
      CHECK_FALSE(b.broken());

      // A cancelled async wait breaks it too; abort() likewise.
      auto [ec, index] = co_await herd::with_timeout(b.async_wait(), 30ms, tuple);
      CHECK(ec == herd::errc::timed_out);
      CHECK(b.broken());
      b.reset();
      b.abort();
      CHECK(b.broken());
      auto [ec2, index2] = co_await b.async_wait(tuple);
      CHECK(ec2 == herd::errc::broken_barrier);
      b.reset();
      // Whole again: a full round of three goes through.
      auto x = herd::start(ex, [b]() mutable { return b.wait(); });
      auto y = herd::start(ex, [b]() mutable { return b.wait(); });
      const std::size_t last = co_await b.async_wait();
      CHECK(last + co_await x.async_result() + co_await y.async_result() == 3);
    }, 20s);
  }

  TEST_CASE("an event set before and after the waiters arrive") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::event e(ex);
      CHECK_FALSE(e.is_set());
      CHECK_FALSE(e.wait(20ms));
      e.set();
      CHECK(e.wait(0ms));  // already set: at once
      co_await e.async_wait();
      auto early = herd::start(ex, [e]() mutable { e.wait(); });
      CHECK((co_await early.async_join()).success());
      e.clear();

      // Waiters first: two children blocking, one parent coroutine awaiting.
      auto w1 = herd::start(ex, [e]() mutable { return e.wait(5000ms); });
      auto w2 = herd::start(ex, [e]() mutable { return e.wait(5000ms); });
      bool parent_woke = false;
      asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
        co_await e.async_wait();
        parent_woke = true;
      }, asio::detached);
      co_await until(ex, [&] { return e.n_waiting() == 3; });  // all three inside wait
      CHECK_FALSE(parent_woke);
      e.set();
      e.clear();  // at once: the waits in progress still end, as with threading.Event
      CHECK(co_await w1.async_result());
      CHECK(co_await w2.async_result());
      co_await until(ex, [&] { return parent_woke; });
      CHECK(e.n_waiting() == 0);
    });
  }

  TEST_CASE("condition notify wakes one waiter, notify_all every waiter") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::condition c(ex);
      herd::shared_value<int> woken(ex, 0);
      herd::shared_value<int> registered(ex, 0);
      std::vector<herd::process<void>> waiters;
      for (int i = 0; i < 3; ++i)
        waiters.push_back(herd::start(ex, [c, woken, registered]() mutable {
          herd::lock_guard g(c);
          registered.fetch_add(1);
          c.wait();  // registers and releases the lock in one step
          woken.fetch_add(1);
        }));
      // Once the parent holds the lock and sees three registered, all three are inside wait().
      for (bool all = false; !all;) {
        auto g = co_await c.async_guard();
        all = registered.load() == 3;
        if (all) c.notify();
        g.unlock();
        if (!all) co_await sleep_for(ex, 2ms);
      }
      co_await until(ex, [&] { return woken.load() >= 1; });
      co_await sleep_for(ex, 100ms);  // time for a second (wrong) wake-up to show
      CHECK(woken.load() == 1);
      {
        auto g = co_await c.async_guard();
        c.notify_all();
      }
      for (auto& w : waiters) CHECK((co_await w.async_join()).success());
      CHECK(woken.load() == 3);

      // The parent waits too; a child notifies.
      auto g = co_await c.async_guard();
      auto notifier = herd::start(ex, [c]() mutable {
        ::usleep(50'000);
        herd::lock_guard held(c);
        c.notify();
      });
      co_await c.async_wait();
      CHECK(g.owns());  // held again
      g.unlock();
      co_await notifier.async_join();

      // wait without the lock; notify without the lock; a timed-out wait holds the lock again.
      CHECK_THROWS_WITH_AS(c.wait(), doctest::Contains("does not own"), boost::system::system_error);
      CHECK_THROWS_AS(c.notify(), boost::system::system_error);
      herd::lock_guard held(c);
      CHECK_FALSE(c.wait(30ms));
      c.notify();  // still ours
      int value = 0;
      CHECK_FALSE(c.wait_for([&] { return value > 0; }, 30ms));
    });
  }

  TEST_CASE("a producer hands 3000 items to four consumer processes through a condition and no wake-up is lost") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      constexpr int total = 3000;
      herd::condition c(ex), drained(ex);
      herd::shared_value<int> items(ex, 0), done(ex, 0);
      std::vector<herd::process<int>> consumers;
      for (int i = 0; i < 4; ++i)
        consumers.push_back(herd::start(ex, [c, drained, items, done]() mutable {
          int mine = 0;
          herd::lock_guard g(c);
          for (;;) {
            if (!c.wait_for([&] { return items.load() > 0 || done.load() != 0; }, 20'000ms)) return -1;  // lost
            if (items.load() == 0) return mine;
            items.fetch_sub(1);
            ++mine;
            herd::lock_guard d(drained);
            drained.notify();
          }
        }));
      // Batches of 1 to 3 items, each with notify(k), the next once the last is taken: a wake-up
      // lost stalls the batch (the consumers' waits give up after 20 s).
      std::mt19937 random(7);
      int produced = 0;
      while (produced < total) {
        const int k = 1 + static_cast<int>(random() % 3);
        {
          auto g = co_await c.async_guard();
          items.fetch_add(k);
          c.notify(static_cast<std::size_t>(k));
        }
        produced += k;
        auto d = co_await drained.async_guard();
        while (items.load() > 0) {
          auto [ec] = co_await herd::with_timeout(drained.async_wait(), 20s, tuple);
          REQUIRE_FALSE(ec);
        }
      }
      {
        auto g = co_await c.async_guard();
        done.store(1);
        c.notify_all();
      }
      int taken = 0;
      for (auto& consumer : consumers) {
        const int mine = co_await consumer.async_result();
        CHECK(mine >= 0);
        taken += mine;
      }
      CHECK(taken == produced);
      CHECK(items.load() == 0);
    });
  }

  TEST_CASE("a holder SIGKILLed while holding: the next acquirer gets owner_died and the lock") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::lock l(ex);
      herd::rlock r(ex);
      herd::event holding(ex);
      auto doomed = herd::start(ex, [l, r, holding]() mutable {
        l.acquire();
        r.acquire();
        r.acquire();
        holding.set();
        ::pause();
      });
      co_await holding.async_wait();
      CHECK(l.owner() == doomed.pid());
      // A blocking child waits on it while the holder dies.
      auto heir = herd::start(ex, [l]() mutable {
        herd::error_code ec;
        l.acquire(ec);
        const bool died = ec == herd::errc::owner_died;
        l.release();
        return died;
      });
      co_await sleep_for(ex, 50ms);
      doomed.kill();
      co_await doomed.async_join();
      CHECK(co_await heir.async_result());  // no deadlock: it got the lock, and was told
      co_await l.async_acquire();           // and the lock works as before
      l.release();
      auto [ec] = co_await r.async_acquire(tuple);
      CHECK(ec == herd::errc::owner_died);
      CHECK(r.depth() == 1);
      r.release();
      CHECK(r.owner() == 0);
      herd::lock_guard g(r);
      CHECK_FALSE(g.owner_died());
    });
  }

  // Python's Condition.notify(n) wakes at most n of the waiters waiting at the time of the call.
  // A waiter killed inside wait() is not one of them: a wake-up that went to it must not stay
  // behind and wake a waiter that came later on top of what a later notify wakes.
  TEST_CASE("a condition waiter SIGKILLed inside wait leaves no wake-up behind for later waiters") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::condition c(ex);
      herd::shared_value<int> registered(ex, 0), woken(ex, 0);
      auto doomed = condition_waiter(ex, c, registered, woken);
      (void)co_await guard_once_registered(ex, c, registered, 1);
      doomed.kill();
      CHECK((co_await doomed.async_join()).signaled());
      {
        auto g = co_await c.async_guard();
        c.notify();  // only the dead waiter waits: wakes nobody
      }
      // Three live waiters: two blocking children and an awaited wait of this process.
      auto a = condition_waiter(ex, c, registered, woken);
      auto b = condition_waiter(ex, c, registered, woken);
      awaited_condition_waiter(ex, c, registered, woken);
      {
        auto g = co_await guard_once_registered(ex, c, registered, 4);
        c.notify();
      }
      co_await woken_exactly(ex, woken, 1);
      {
        auto g = co_await c.async_guard();
        c.notify();
      }
      co_await woken_exactly(ex, woken, 2);
      {
        auto g = co_await c.async_guard();
        c.notify_all();
      }
      CHECK(co_await a.async_result());
      CHECK(co_await b.async_result());
      co_await woken_exactly(ex, woken, 3);
    });
  }

  TEST_CASE("notify of more waiters than are alive leaves no wake-up behind when one was SIGKILLed") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::condition c(ex);
      herd::shared_value<int> registered(ex, 0), woken(ex, 0);
      // The dead waiter awaits, in an event loop of its own.
      auto doomed = herd::start(ex, [c, registered]() mutable {
        if (!children_may_await) {
          herd::lock_guard g(c);
          registered.fetch_add(1);
          c.wait();
          return;
        }
        asio::io_context io;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
          auto g = co_await c.async_guard();
          registered.fetch_add(1);
          co_await c.async_wait();
        }, asio::detached);
        io.run();
      });
      auto first = condition_waiter(ex, c, registered, woken);
      (void)co_await guard_once_registered(ex, c, registered, 2);
      doomed.kill();
      CHECK((co_await doomed.async_join()).signaled());
      {
        auto g = co_await c.async_guard();
        c.notify(2);  // one live waiter: wakes it, and nobody else ever
      }
      CHECK(co_await first.async_result());
      CHECK(woken.load() == 1);
      co_await two_waiters_woken_one_then_all(ex, c, registered, woken, 4, 1);
    });
  }

  TEST_CASE("a condition waiter that died and is not reaped yet (a zombie) leaves no wake-up behind") {
    leak_check guard;
    asio::io_context io;  // never run: nobody reaps the dead waiter meanwhile
    const auto ex = io.get_executor();
    herd::condition c(ex);
    herd::shared_value<int> registered(ex, 0), woken(ex, 0);
    // Blocking forms of the helpers above: returns holding the lock once `n` have registered.
    auto hold_once_registered = [&](int n) {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      for (c.acquire(); registered.load() < n; c.acquire()) {
        c.release();
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(2ms);
      }
    };
    auto doomed = condition_waiter(ex, c, registered, woken);
    hold_once_registered(1);
    c.release();
    doomed.kill();
    REQUIRE(herd_test::wait_until_gone(doomed.pid()));  // a zombie now: kill(pid, 0) still succeeds
    CHECK(herd_test::read_stat(doomed.pid()).state == 'Z');
    c.acquire();
    c.notify();  // only the dead waiter waits
    c.release();
    auto a = condition_waiter(ex, c, registered, woken);
    auto b = condition_waiter(ex, c, registered, woken);
    hold_once_registered(3);
    c.notify();
    c.release();
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (woken.load() < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
    std::this_thread::sleep_for(150ms);
    CHECK(woken.load() == 1);
    c.acquire();
    c.notify_all();
    c.release();
    CHECK(a.join().success());
    CHECK(b.join().success());
    CHECK(woken.load() == 2);
    CHECK(doomed.join().signaled());
  }

  TEST_CASE("a condition wait destroyed with its event loop while it retakes the lock leaves no wake-up behind") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::condition c(ex);
      herd::shared_value<int> registered(ex, 0), woken(ex, 0);
      herd::event holding(ex), release_now(ex);
      bool called = false;
      {
        asio::io_context loop;
        asio::cancellation_signal cancel;
        c.acquire();
        c.async_wait(asio::bind_cancellation_slot(cancel.slot(),
                                                  asio::bind_executor(loop, [&](herd::error_code) { called = true; })));
        loop.run_for(20ms);  // waiting, the lock released
        CHECK(c.owner() == 0);
        auto holder = herd::start(ex, [c, holding, release_now]() mutable {
          herd::lock_guard held(c);
          holding.set();
          release_now.wait();
        });
        co_await holding.async_wait();
        cancel.emit(asio::cancellation_type::all);
        loop.run_for(20ms);  // cancelled: now it waits to take the lock again, which the holder has
        release_now.set();
        co_await holder.async_join();
      }  // the loop goes, with the wait
      CHECK_FALSE(called);
      {
        auto g = co_await c.async_guard();
        c.notify();  // only the abandoned wait is registered: wakes nobody
      }
      co_await two_waiters_woken_one_then_all(ex, c, registered, woken, 2, 0);
    });
  }

  TEST_CASE("a holder that died and is not reaped yet (a zombie) is seen as gone") {
    leak_check guard;
    asio::io_context io;  // never run: nobody reaps the child meanwhile
    herd::lock l(io.get_executor());
    herd::event holding(io.get_executor());
    auto child = herd::start(io.get_executor(), [l, holding]() mutable {
      l.acquire();
      holding.set();
      ::_exit(0);  // with the lock held
    });
    holding.wait();
    REQUIRE(herd_test::wait_until_gone(child.pid()));  // a zombie now: kill(pid, 0) still succeeds
    CHECK(herd_test::read_stat(child.pid()).state == 'Z');
    CHECK_THROWS_WITH_AS(l.acquire(5000ms), doctest::Contains("died"), boost::system::system_error);
    CHECK(l.owner() == ::getpid());  // held, after owner_died
    l.release();
    CHECK(child.join().exited());
  }

  TEST_CASE("a cancelled async_acquire takes nothing and loses no wake-up") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::lock l(ex);
      herd::semaphore s(ex, 1);
      herd::event release_now(ex), holding(ex);
      auto holder = herd::start(ex, [l, s, release_now, holding]() mutable {
        l.acquire();
        s.acquire();
        holding.set();
        release_now.wait();
        l.release();
        s.release();
      });
      co_await holding.async_wait();
      // A blocking waiter in another process, and a parent await that gives up.
      auto blocked = herd::start(ex, [l, s]() mutable {
        const bool got_lock = l.acquire(5000ms);
        const bool got_unit = s.acquire(5000ms);
        if (got_lock) l.release();
        if (got_unit) s.release();
        return got_lock && got_unit;
      });
      co_await sleep_for(ex, 50ms);
      auto [ec1] = co_await herd::with_timeout(l.async_acquire(), 30ms, tuple);
      CHECK(ec1 == herd::errc::timed_out);
      auto [ec2] = co_await herd::with_timeout(s.async_acquire(), 30ms, tuple);
      CHECK(ec2 == herd::errc::timed_out);
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(ex, 20ms);
      auto winner = co_await (l.async_acquire(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
      CHECK(winner.index() == 1);
      CHECK(l.owner() == holder.pid());
      const auto start = std::chrono::steady_clock::now();
      release_now.set();
      CHECK(co_await blocked.async_result());
      CHECK(std::chrono::steady_clock::now() - start < 2s);
      co_await holder.async_join();
      CHECK(l.try_acquire());  // nothing is held by the cancelled waits
      l.release();
      CHECK(s.value() == 1);
    });
  }

  TEST_CASE("an event loop destroyed while an acquire waits takes the wait with it") {
    leak_check guard;
    asio::io_context owner;
    herd::lock l(owner.get_executor());
    l.acquire();
    bool called = false;
    {
      asio::io_context loop;
      l.async_acquire(asio::bind_executor(loop, [&](herd::error_code) { called = true; }));
      loop.run_for(30ms);  // waits: the lock is held
    }
    l.release();  // wakes nobody's handler: the wait went with its loop
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(called);
    CHECK(l.try_acquire());
    l.release();
  }

  TEST_CASE("an acquire whose event loop is destroyed before it completes gives the lock back") {
    leak_check guard;
    asio::io_context owner;
    herd::lock l(owner.get_executor());
    herd::semaphore s(owner.get_executor(), 1);
    {
      asio::io_context loop;
      // Both succeed at once; their completions are posted to `loop`, which never runs them.
      l.async_acquire(asio::bind_executor(loop, [](herd::error_code) {}));
      s.async_acquire(asio::bind_executor(loop, [](herd::error_code) {}));
      CHECK(l.owner() == ::getpid());
      CHECK(s.value() == 0);
    }
    CHECK(l.owner() == 0);
    CHECK(s.value() == 1);
  }

  TEST_CASE("a cancelled condition wait takes the lock again without spinning") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::condition c(ex);
      auto g = co_await c.async_guard();
      herd::event holding(ex);
      auto holder = herd::start(ex, [c, holding]() mutable {
        herd::lock_guard held(c);  // gets it once the parent's wait releases it
        holding.set();
        ::usleep(300'000);
      });
      rusage before{};
      ::getrusage(RUSAGE_SELF, &before);
      const auto start = std::chrono::steady_clock::now();
      auto [ec] = co_await herd::with_timeout(c.async_wait(), 30ms, tuple);
      CHECK(ec == herd::errc::timed_out);
      CHECK(holding.is_set());
      CHECK(std::chrono::steady_clock::now() - start >= 200ms);  // it waited for the lock
      rusage after{};
      ::getrusage(RUSAGE_SELF, &after);
      const auto cpu = [](const rusage& r) {
        return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000.0 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1000.0;
      };
      CHECK_MESSAGE(cpu(after) - cpu(before) < 100, "CPU while retaking the lock: ", cpu(after) - cpu(before), " ms");
      CHECK(c.owner() == ::getpid());  // held again
      g.unlock();
      co_await holder.async_join();
    });
  }

  TEST_CASE("timeouts: acquire, wait and a held lock") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::lock l(ex);
      herd::semaphore none(ex, 0);
      herd::event e(ex);
      l.acquire();
      auto child = herd::start(ex, [l, none, e]() mutable {
        const auto start = std::chrono::steady_clock::now();
        const bool a = l.acquire(60ms), b = none.acquire(60ms), c = e.wait(60ms);
        const auto took = std::chrono::steady_clock::now() - start;
        return !a && !b && !c && took >= 180ms && took < 3s;
      });
      CHECK(co_await child.async_result());
      l.release();
      auto [ec] = co_await herd::with_timeout(none.async_acquire(), 30ms, tuple);
      CHECK(ec == herd::errc::timed_out);
      CHECK_FALSE(none.try_acquire());
      none.release();
      CHECK(none.try_acquire());
      herd::lock_guard g(l, 10ms);
      CHECK(g.owns());
    });
  }

  TEST_CASE("threads of one process and its event loop share a lock (in-process, for TSan)") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::lock l(ex);
      herd::condition c(ex);
      long total = 0;  // plain memory: the lock must order every access
      int ready = 0;
      std::vector<std::thread> threads;
      for (int t = 0; t < 3; ++t)
        threads.emplace_back([&] {
          for (int i = 0; i < 5'000; ++i) {
            herd::lock_guard g(l);
            ++total;
          }
          herd::lock_guard g(c);
          ++ready;
          c.notify_all();
        });
      for (int i = 0; i < 1'000; ++i) {
        auto g = co_await l.async_guard();
        ++total;
      }
      {
        auto g = co_await c.async_guard();
        while (ready < 3) co_await c.async_wait();
      }
      for (auto& t : threads) t.join();
      herd::lock_guard g(l);
      CHECK(total == 16'000);
    });
  }
}
