// Faults across the start methods, with a separate parent program (tests/support/pool_probe.cpp)
// that can be killed or kept busy without harming the test process.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/child.hpp>
#include <herd/command.hpp>
#include <herd/pool.hpp>
#include <herd/process.hpp>

#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstdlib>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {
int parent_memory = 0;  // set by the test; a forked child sees it, a spawned or forkserver one does not
int read_parent_memory() { return parent_memory; }
void set_parent_memory(int v) { parent_memory = v; }
}  // namespace

TEST_CASE("start methods: a SIGKILLed parent takes its pool workers and its forkserver with it") {
  herd_test::leak_check leaks;
  herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    for (const char* method : {"fork", "spawn", "forkserver"}) {
      INFO(method);
      herd::child probe(ex, herd::command(HERD_POOL_PROBE, method, "orphans").std_out(herd::stdio::pipe()));
      const std::string line = co_await probe.std_out().async_read_line();
      std::istringstream in(line);
      std::string workers_word, server_word;
      int first = 0, second = 0, server = 0;
      in >> workers_word >> first >> second >> server_word >> server;
      REQUIRE(workers_word == "workers");
      REQUIRE(first > 0);
      REQUIRE(second > 0);
      CHECK((server > 0) == (std::string(method) == "forkserver"));
      probe.kill();
      co_await probe.async_wait();
      CHECK(herd_test::wait_until_gone(first));
      CHECK(herd_test::wait_until_gone(second));
      if (server > 0) CHECK(herd_test::wait_until_gone(server));
    }
  });
}

TEST_CASE("start methods: workers and function children start while other threads hold a lock and allocate") {
  herd_test::leak_check leaks;
  herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    for (const char* method : {"spawn", "forkserver"}) {
      INFO(method);
      herd::child probe(ex, herd::command(HERD_POOL_PROBE, method, "busy", "500").std_out(herd::stdio::pipe()));
      const std::string line = co_await probe.std_out().async_read_line();
      CHECK(line == "started 500 children 500");
      const auto status = co_await probe.async_wait();
      CHECK(status.success());
    }
  });
}

TEST_CASE("start methods: by default pools use the forkserver after herd::init and herd::start forks") {
  // This binary's main called herd::init and no test run without HERD_TEST_START_METHOD calls
  // set_start_method: the defaults are the ones a program gets.
  REQUIRE_MESSAGE(std::getenv("HERD_TEST_START_METHOD") == nullptr, "the matrix runs set a start method");
  herd_test::leak_check leaks;
  herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    CHECK(herd::get_start_method() == herd::start_method::fork);
    parent_memory = 5;
    {
      herd::pool pool(ex, {.processes = 1});
      CHECK(co_await pool.async_apply(read_parent_memory) == 0);  // not a copy of this process
    }
    {
      // An initializer that cannot travel keeps the pool on fork.
      const int value = 6;
      herd::pool pool(ex, {.processes = 1, .initializer = [value] { set_parent_memory(value); }});
      CHECK(co_await pool.async_apply(read_parent_memory) == 6);
    }
    parent_memory = 5;
    auto child = herd::start(ex, read_parent_memory);
    CHECK(co_await child.async_result() == 5);  // a fork: the copy has it
    parent_memory = 0;
  });
}
