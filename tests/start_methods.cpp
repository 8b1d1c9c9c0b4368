// Faults across the start methods, with a separate parent program (tests/support/pool_probe.cpp)
// that can be killed or kept busy without harming the test process.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/child.hpp>
#include <herd/command.hpp>

#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
namespace asio = boost::asio;

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

TEST_CASE("start methods: workers start while other threads hold a lock and allocate") {
  herd_test::leak_check leaks;
  herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
    for (const char* method : {"spawn", "forkserver"}) {
      INFO(method);
      herd::child probe(ex, herd::command(HERD_POOL_PROBE, method, "busy", "500").std_out(herd::stdio::pipe()));
      const std::string line = co_await probe.std_out().async_read_line();
      CHECK(line == "started 500");
      const auto status = co_await probe.async_wait();
      CHECK(status.success());
    }
  });
}
