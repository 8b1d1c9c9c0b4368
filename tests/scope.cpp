#include <herd/scope.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <optional>
#include <stdexcept>
#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {
[[noreturn]] void loop_forever() {
  for (;;) ::pause();
}
}  // namespace

TEST_SUITE("scope") {
  TEST_CASE("closing a scope stops and reaps every child still running, programs and functions") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::scope s(ex);
      auto quick = s.start([] { return 5; });
      auto stuck = s.start([] { loop_forever(); });
      auto program = s.spawn(herd::command("sleep", "100"));
      CHECK((co_await quick.async_result()) == 5);
      CHECK(s.running() == 2);
      co_await s.async_close();
      CHECK(s.running() == 0);
      CHECK(stuck.status()->signal() == SIGTERM);
      CHECK(stuck.status()->reason() == herd::exit_reason::stopped);
      CHECK(program.status()->signal() == SIGTERM);
    });
  }

  TEST_CASE("scoped() cleans up when the body returns") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int pid = 0;
      const int answer = co_await herd::scoped(ex, [&](herd::scope& s) -> asio::awaitable<int> {
        auto forever = s.start([] { loop_forever(); });
        pid = forever.pid();
        co_return 42;  // the handle's destructor starts the stop; the scope awaits the reap
      });
      CHECK(answer == 42);
      CHECK(herd_test::read_stat(pid).state == '?');  // stopped and reaped before scoped() returned
    });
  }

  TEST_CASE("scoped() stops its children when the body throws, then rethrows") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int pid = 0;
      try {
        co_await herd::scoped(ex, [&](herd::scope& s) -> asio::awaitable<void> {
          auto forever = s.start([] { loop_forever(); });
          pid = forever.pid();
          throw std::runtime_error("the body failed");
          co_return;
        });
        FAIL("no exception");
      } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "the body failed");
      }
      CHECK(herd_test::read_stat(pid).state == '?');
    });
  }

  TEST_CASE("scoped() stops its children when the body is cancelled") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      int pid = 0;
      auto body = herd::scoped(ex, [&](herd::scope& s) -> asio::awaitable<void> {
        auto forever = s.start([] { loop_forever(); });
        pid = forever.pid();
        co_await forever.async_join();  // never completes on its own
      });
      asio::steady_timer timer(ex, 50ms);
      try {
        co_await (std::move(body) || timer.async_wait(asio::use_awaitable));
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
      }
      CHECK(pid > 0);
      CHECK(herd_test::read_stat(pid).state == '?');
    });
  }

  TEST_CASE("a scope destroyed without closing stops its children in the background") {
    leak_check guard;
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::optional<herd::process<void>> kept;  // outlives the scope: only the scope can stop it
      {
        herd::scope s(ex);
        kept.emplace(s.start([] { loop_forever(); }));
      }
      auto status = co_await kept->async_join();
      CHECK(status.signal() == SIGTERM);
      CHECK(status.reason() == herd::exit_reason::stopped);
    });
  }

  TEST_CASE("a detached process leaves its scope") {
    leak_check guard;
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::scope s(ex);
      auto p = s.start([] { ::usleep(50000); });
      p.detach();
      CHECK(s.running() == 0);
      co_await s.async_close();
      // It ends on its own; herd reaps it when asked who still runs.
      asio::steady_timer timer(ex);
      for (int i = 0; i < 300 && !herd_test::child_pids().empty(); ++i) {
        (void)herd::active_children();
        timer.expires_after(10ms);
        co_await timer.async_wait(asio::deferred);
      }
    });
  }
}
