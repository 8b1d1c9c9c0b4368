// A parent SIGKILLed (no code of its own runs) takes the process groups herd started with it:
// a program's background grandchildren too, which PR_SET_PDEATHSIG alone never reaches.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <csignal>
#include <optional>
#include <string>

#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

// A function child (the "parent" here) runs `program`, which prints a grandchild's pid, sends
// that pid back, and waits to be killed with everything it started still running.
asio::awaitable<int> parent_with_grandchild(asio::any_io_executor ex, std::optional<herd::process<void>>& parent,
                                            herd::command program) {
  herd::queue<int> pids(ex);
  parent.emplace(herd::start(ex, [pids, program]() mutable {
    asio::io_context io;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      herd::command cmd = program;
      cmd.std_out(herd::stdio::pipe());
      herd::child c(io.get_executor(), cmd);
      pids.put(std::stoi(co_await c.std_out().async_read_line()));
      ::pause();
    }, asio::detached);
    io.run();
  }));
  co_return co_await pids.async_get();
}

bool running(int pid) {
  const char state = herd_test::read_stat(pid).state;
  return state != '?' && state != 'Z';
}

}  // namespace

TEST_SUITE("process") {
  TEST_CASE("a SIGKILLed parent takes its program's background grandchild with it") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::optional<herd::process<void>> parent;
      const int grandchild = co_await parent_with_grandchild(
          ex, parent, herd::command("/bin/sh", "-c", "sleep 1000 & echo $!; wait"));
      REQUIRE(running(grandchild));
      parent->kill();
      co_await parent->async_join();
      CHECK_MESSAGE(herd_test::wait_until_gone(grandchild), "the grandchild outlived its killed grandparent");
    });
  }

  TEST_CASE("a SIGKILLed parent: a grandchild that left for its own session is beyond reach") {
    // The documented limit: setsid() leaves the group before herd can know of it.
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::optional<herd::process<void>> parent;
      const int in_group = co_await parent_with_grandchild(ex, parent, herd::command(HERD_TEST_CHILD, "grandchild", "100000"));
      std::optional<herd::process<void>> other;
      const int escaped =
          co_await parent_with_grandchild(ex, other, herd::command(HERD_TEST_CHILD, "grandchild-setsid", "100000"));
      REQUIRE(running(in_group));
      REQUIRE(running(escaped));
      // Its pid is printed as it forks: wait until it has really left (setsid done).
      for (int i = 0; i < 2000 && ::getsid(escaped) != escaped; ++i) ::usleep(1000);
      REQUIRE(::getsid(escaped) == escaped);
      parent->kill();
      other->kill();
      co_await parent->async_join();
      co_await other->async_join();
      CHECK(herd_test::wait_until_gone(in_group));
      ::usleep(200'000);
      CHECK(running(escaped));
      ::kill(escaped, SIGKILL);
      CHECK(herd_test::wait_until_gone(escaped));
    });
  }
}
