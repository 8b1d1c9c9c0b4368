// Many coroutines of one process awaiting one primitive, their waits ending in every order: by
// the primitive, by a timeout, by a cancellation. (Boost 1.81's any_completion_handler re-wraps
// itself when move-assigned; a pending-wait list that move-assigned its entries crashed here.)
#include <herd/sync.hpp>

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/process.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <numeric>
#include <optional>
#include <random>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;
using boost::system::error_code;

namespace {

constexpr auto tuple = asio::as_tuple(asio::deferred);
constexpr int waiters = 24;

enum class ending { primitive, timeout, cancel };

asio::awaitable<void> sleep_for(asio::any_io_executor ex, std::chrono::milliseconds d) {
  asio::steady_timer timer(ex, d);
  co_await timer.async_wait(asio::deferred);
}

struct outcome {
  int successes = 0;   // waits the primitive completed
  int finished = 0;
  bool wrong = false;  // an error its ending cannot give
};

// `waiters` coroutines each await `wait(token)`. A third of them end by a timeout, a third by an
// explicit cancellation, a third wait for the primitive; the shuffled schedule (by `seed`) calls
// `step()` where a primitive-ending wait stands, so completions, timeouts and cancellations
// interleave. `after(ec)` runs in a waiter once its wait has ended (a lock waiter keeps its hold).
// Afterwards `step()` repeats until every waiter has ended.
template <typename Wait, typename Step, typename After>
asio::awaitable<outcome> end_in_every_order(asio::any_io_executor ex, unsigned seed, Wait wait, Step step, After after) {
  std::vector<int> schedule(waiters);
  std::iota(schedule.begin(), schedule.end(), 0);
  std::mt19937 random(seed);
  std::shuffle(schedule.begin(), schedule.end(), random);
  auto role = [](int i) { return static_cast<ending>(i % 3); };

  outcome result;
  std::vector<asio::cancellation_signal> signals(waiters);
  for (int k = 0; k < waiters; ++k) {
    const int i = schedule[k];
    asio::co_spawn(ex, [&, i, k]() -> asio::awaitable<void> {
      error_code ec;
      if (role(i) == ending::timeout) {
        std::tie(ec) = co_await herd::with_timeout(wait(asio::deferred), 10ms + 3ms * k, tuple);
        result.wrong |= ec && ec != herd::errc::timed_out;
      } else if (role(i) == ending::cancel) {
        std::tie(ec) = co_await wait(asio::bind_cancellation_slot(signals[i].slot(), asio::as_tuple(asio::use_awaitable)));
        result.wrong |= ec && ec != asio::error::operation_aborted;
      } else {
        std::tie(ec) = co_await wait(tuple);
        result.wrong |= static_cast<bool>(ec);
      }
      if (!ec) ++result.successes;
      co_await after(ec);
      ++result.finished;
    }, asio::detached);
  }
  co_await sleep_for(ex, 10ms);
  for (int k = 0; k < waiters; ++k) {
    const int i = schedule[k];
    co_await sleep_for(ex, 3ms);
    if (role(i) == ending::cancel) signals[i].emit(asio::cancellation_type::all);
    if (role(i) == ending::primitive) step();
  }
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (result.finished < waiters) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    step();
    co_await sleep_for(ex, 3ms);
  }
  co_return result;
}

}  // namespace

TEST_SUITE("sync") {
  TEST_CASE("many awaited waits of one event end in every order") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (unsigned seed : {1u, 2u, 3u}) {
        herd::event e(ex);
        // The primitive's step ends them all: set now, and cleared again for the waits to come.
        const outcome r = co_await end_in_every_order(
            ex, seed, [&](auto token) { return e.async_wait(std::move(token)); },
            [&] {
              e.set();
              e.clear();
            },
            [&](error_code) -> asio::awaitable<void> { co_return; });
        CHECK_FALSE(r.wrong);
        CHECK(r.successes >= waiters / 3);
        CHECK(e.n_waiting() == 0);
      }
    });
  }

  TEST_CASE("many awaited acquires of one lock end in every order") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (unsigned seed : {1u, 2u, 3u}) {
        herd::lock l(ex);
        REQUIRE(l.try_acquire());
        int releases = 0;
        // The lock belongs to the process: the schedule releases what a waiter acquired.
        const outcome r = co_await end_in_every_order(
            ex, seed, [&](auto token) { return l.async_acquire(std::move(token)); },
            [&] {
              if (!l.locked()) return;
              l.release();
              ++releases;
            },
            [&](error_code) -> asio::awaitable<void> { co_return; });
        CHECK_FALSE(r.wrong);
        CHECK(r.successes >= waiters / 3);
        // Held at the start, then taken once after each release: one acquisition per release
        // but the last, which left it free, or all of them.
        CHECK(releases - r.successes == (l.locked() ? 0 : 1));
        if (l.locked()) l.release();
        CHECK(l.try_acquire());
        l.release();
      }
    });
  }

  TEST_CASE("many awaited acquires of one semaphore end in every order") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (unsigned seed : {1u, 2u, 3u}) {
        herd::semaphore s(ex, 0);
        int releases = 0;
        int finished_before = 0;
        const outcome r = co_await end_in_every_order(
            ex, seed, [&](auto token) { return s.async_acquire(std::move(token)); },
            [&] {
              if (s.value() > 0) return;  // the last unit is still on its way to a waiter
              s.release();
              ++releases;
            },
            [&](error_code) -> asio::awaitable<void> {
              ++finished_before;
              co_return;
            });
        CHECK_FALSE(r.wrong);
        CHECK(finished_before == waiters);
        CHECK(r.successes >= waiters / 3);
        // Each unit went to one waiter, or is still there.
        CHECK(r.successes + static_cast<int>(s.value()) == releases);
      }
    });
  }

  TEST_CASE("many awaited condition waits end in every order, each holding the lock again") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (unsigned seed : {1u, 2u, 3u}) {
        herd::condition c(ex);
        int held_after = 0;
        const outcome r = co_await end_in_every_order(
            ex, seed,
            [&](auto token) {
              // Take the lock, then wait; both steps as one deferred operation.
              return asio::async_initiate<decltype(token), void(error_code)>(
                  [&](auto handler) {
                    asio::co_spawn(
                        ex,
                        [&]() -> asio::awaitable<error_code> {
                          co_await c.async_acquire();
                          co_return error_code();
                        },
                        [&, handler = std::move(handler)](std::exception_ptr, error_code) mutable {
                          c.async_wait(std::move(handler));
                        });
                  },
                  token);
            },
            [&] {
              if (!c.try_acquire()) return;
              c.notify();
              c.release();
            },
            [&](error_code) -> asio::awaitable<void> {
              // Holds the lock again whatever ended the wait.
              if (c.owner() == herd::this_process::pid()) ++held_after;
              c.release();
              co_return;
            });
        CHECK_FALSE(r.wrong);
        CHECK(held_after == waiters);
        CHECK(c.try_acquire());
        c.release();
      }
    });
  }

  TEST_CASE("twenty-four coroutines at one barrier: a trip, then a timeout that breaks it for all") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::barrier b(ex, waiters + 1);
      int passed = 0, broken = 0;
      for (int i = 0; i < waiters; ++i)
        asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
          auto [ec, index] = co_await b.async_wait(tuple);
          if (!ec) ++passed;
        }, asio::detached);
      co_await sleep_for(ex, 20ms);
      co_await b.async_wait();
      while (passed < waiters) co_await sleep_for(ex, 2ms);
      for (int i = 0; i < waiters; ++i)
        asio::co_spawn(ex, [&, i]() -> asio::awaitable<void> {
          auto [ec, index] = co_await herd::with_timeout(b.async_wait(), i == 7 ? 30ms : 10s, tuple);
          if (ec) ++broken;
        }, asio::detached);
      while (broken < waiters) co_await sleep_for(ex, 2ms);
      CHECK(b.broken());
    });
  }
}
