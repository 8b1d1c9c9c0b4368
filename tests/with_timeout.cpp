#include <herd/with_timeout.hpp>  // first: the header stands alone

#include "support/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
namespace asio = boost::asio;

TEST_SUITE("with_timeout") {
  TEST_CASE("an operation that takes too long completes with timed_out") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      asio::steady_timer slow(ex, 10s);
      const auto start = std::chrono::steady_clock::now();
      auto [ec] = co_await herd::with_timeout(slow.async_wait(asio::deferred), 50ms, asio::as_tuple(asio::deferred));
      CHECK(ec == herd::errc::timed_out);
      CHECK(std::chrono::steady_clock::now() - start < 5s);
    });
  }

  TEST_CASE("an operation that finishes in time keeps its own result") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      asio::steady_timer quick(ex, 10ms);
      auto [ec] = co_await herd::with_timeout(quick.async_wait(asio::deferred), 5s, asio::as_tuple(asio::deferred));
      CHECK_FALSE(ec);
    });
  }

  TEST_CASE("a timed-out co_await throws system_error with timed_out") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      asio::steady_timer slow(ex, 10s);
      try {
        co_await herd::with_timeout(slow.async_wait(asio::deferred), 20ms);
        FAIL("no exception");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::timed_out);
      }
    });
  }

  TEST_CASE("an awaitable that takes too long throws timed_out naming the limit and the cause") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const auto slow = [](asio::any_io_executor e) -> asio::awaitable<int> {
        asio::steady_timer t(e, 10s);
        co_await t.async_wait(asio::deferred);
        co_return 1;
      };
      const auto start = std::chrono::steady_clock::now();
      try {
        co_await herd::with_timeout(slow(ex), 50ms);
        FAIL("no exception");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::timed_out);
        CHECK(std::string(e.what()).find("50 ms") != std::string::npos);
      }
      CHECK(std::chrono::steady_clock::now() - start < 5s);
    });
  }

  TEST_CASE("an awaitable that finishes in time gives its value and its own exception") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const auto quick = [](asio::any_io_executor e) -> asio::awaitable<std::string> {
        asio::steady_timer t(e, 5ms);
        co_await t.async_wait(asio::deferred);
        co_return "done";
      };
      const std::string value = co_await herd::with_timeout(quick(ex), 5s);
      CHECK(value == "done");
      const auto throws = []() -> asio::awaitable<void> {
        throw std::invalid_argument("bad");
        co_return;
      };
      bool caught = false;
      try {
        co_await herd::with_timeout(throws(), 5s);
      } catch (const std::invalid_argument& e) {
        caught = std::string(e.what()) == "bad";
      }
      CHECK(caught);
    });
  }

  TEST_CASE("cancelling the await of a wrapped awaitable cancels it and is not a timeout") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const auto slow = [](asio::any_io_executor e) -> asio::awaitable<void> {
        asio::steady_timer t(e, 10s);
        co_await t.async_wait(asio::deferred);
      };
      asio::cancellation_signal stop;
      std::exception_ptr outcome;
      bool done = false;
      asio::co_spawn(ex, herd::with_timeout(slow(ex), 10s),
                     asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
                       outcome = e;
                       done = true;
                     }));
      asio::steady_timer later(ex, 20ms);
      co_await later.async_wait(asio::deferred);
      stop.emit(asio::cancellation_type::terminal);
      for (int i = 0; i < 500 && !done; ++i) {
        asio::steady_timer tick(ex, 2ms);
        co_await tick.async_wait(asio::deferred);
      }
      REQUIRE(done);
      REQUIRE(outcome);
      try {
        std::rethrow_exception(outcome);
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
      }
    });
  }
}
