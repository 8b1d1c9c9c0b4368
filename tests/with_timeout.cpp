#include <herd/with_timeout.hpp>  // first: the header stands alone

#include "support/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>

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
}
