// herd::shutdown: its decisions alone, and a program stopped by real signals.
#include <herd/shutdown.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include "detail/shutdown_steps.hpp"

#include <herd/child.hpp>
#include <herd/command.hpp>

#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd::detail::shutdown_steps;

TEST_SUITE("shutdown steps") {
  TEST_CASE("a first signal drains, the end of the drain finishes with exit code 0") {
    shutdown_steps s;
    CHECK(s.on_drained() == shutdown_steps::action::none);  // nothing began
    CHECK(s.on_signal(SIGTERM) == shutdown_steps::action::start_draining);
    CHECK(s.current() == shutdown_steps::state::draining);
    CHECK(s.first_signal() == SIGTERM);
    CHECK(s.on_drained() == shutdown_steps::action::finish);
    CHECK(s.current() == shutdown_steps::state::done);
    CHECK(s.exit_code() == 0);
    CHECK(s.on_signal(SIGINT) == shutdown_steps::action::none);  // over
    CHECK(s.on_deadline() == shutdown_steps::action::none);
  }

  TEST_CASE("a second signal or the deadline forces, with 128 + the signal") {
    shutdown_steps twice;
    twice.on_signal(SIGTERM);
    CHECK(twice.on_signal(SIGINT) == shutdown_steps::action::force);
    CHECK(twice.exit_code() == 128 + SIGINT);
    CHECK(twice.on_drained() == shutdown_steps::action::none);  // the drain's end after a force

    shutdown_steps late;
    late.on_signal(SIGTERM);
    CHECK(late.on_deadline() == shutdown_steps::action::force);
    CHECK(late.exit_code() == 128 + SIGTERM);

    shutdown_steps asked;
    asked.on_signal(0);
    CHECK(asked.on_deadline() == shutdown_steps::action::force);
    CHECK(asked.exit_code() == 1);
  }
}

namespace {

struct probe_run {
  std::string out;
  herd::exit_status status;
};

// Starts the probe, waits for its task to run, sends `signals` SIGTERMs 100 ms apart, and
// returns all it printed and how it ended.
asio::awaitable<probe_run> run_probe(asio::any_io_executor ex, const char* mode, int signals, int& worker) {
  herd::child probe(ex, herd::command(HERD_SHUTDOWN_PROBE, mode).std_out(herd::stdio::pipe()));
  const std::string ready = co_await probe.std_out().async_read_line();
  std::istringstream(ready.substr(6)) >> worker;
  asio::steady_timer gap(ex);
  for (int k = 0; k < signals; ++k) {
    if (k > 0) {
      gap.expires_after(100ms);
      co_await gap.async_wait(asio::deferred);
    }
    probe.signal(SIGTERM);
  }
  probe_run result;
  result.out = co_await probe.std_out().async_read_all();
  result.status = co_await probe.async_wait();
  co_return result;
}

}  // namespace

TEST_SUITE("shutdown") {
  TEST_CASE("SIGTERM stops the server first, drains the pool's task, ends the loop and exits 0") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int worker = 0;
      const probe_run run = co_await run_probe(ex, "drain", 1, worker);
      CHECK(run.status.code() == 0);
      const auto server = run.out.find("server stops accepting");
      const auto task = run.out.find("task done in " + std::to_string(worker));
      CHECK(server != std::string::npos);
      CHECK(task != std::string::npos);
      CHECK(server < task);  // the step registered last ran first
      CHECK(run.out.find("loop ended, signal 15, exit code 0") != std::string::npos);
      CHECK(herd_test::wait_until_gone(worker));
    });
  }

  TEST_CASE("a second SIGTERM during the drain stops everything at once: exit code 143") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int worker = 0;
      const auto start = std::chrono::steady_clock::now();
      const probe_run run = co_await run_probe(ex, "force", 2, worker);
      CHECK(run.status.code() == 128 + SIGTERM);
      CHECK(run.out.find("task done") == std::string::npos);  // the 30 s task did not finish
      CHECK(run.out.find("exit code 143") != std::string::npos);
      CHECK(std::chrono::steady_clock::now() - start < 20s);
      CHECK(herd_test::wait_until_gone(worker));
    });
  }

  TEST_CASE("a drain that outlasts its deadline is forced: exit code 143") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int worker = 0;
      const probe_run run = co_await run_probe(ex, "deadline", 1, worker);
      CHECK(run.status.code() == 128 + SIGTERM);
      CHECK(run.out.find("server stops accepting") != std::string::npos);
      CHECK(run.out.find("task done") == std::string::npos);
      CHECK(herd_test::wait_until_gone(worker));
    });
  }
}
