#include <herd/process.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

int square(int x) { return x * x; }

struct point {
  int x;
  std::string label;
  std::vector<double> values;
};

struct custom_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int global_counter = 0;

// Python's Process subclass overriding run(), with its attributes: a plain struct, so that it
// also travels to spawn and forkserver children (as its encoded fields).
struct greeter {
  std::string name;
  int times = 0;
  std::string run() const {
    std::string text;
    for (int i = 0; i < times; ++i) text += "hello " + name + ";";
    return text;
  }
};

// A text of `size` bytes that tells its every byte's place.
std::string patterned(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7 + size) % 26);
  return s;
}

// Writes "done" to `path` after `delay_us`.
void mark_after(std::string path, int delay_us) {
  ::usleep(static_cast<useconds_t>(delay_us));
  std::ofstream(path) << "done";
}

[[noreturn]] void loop_forever() {
  for (;;) ::pause();
}

// Runs `body` in a forked helper process standing in for a whole parent program; returns its
// exit status and what it wrote to stdout. (Tests whose subject is the parent's own exit or
// death need a parent they can let die.)
struct helper_result {
  int wait_status;
  std::string out;
};

template <typename Body>
helper_result in_helper_process(Body body) {
  int out[2];
  REQUIRE(::pipe(out) == 0);
  std::cout.flush();
  const pid_t helper = ::fork();
  if (helper == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    body();
    std::exit(0);  // a normal exit: atexit handlers and static destructors run
  }
  ::close(out[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(helper, &status, 0);
  return {status, text};
}

}  // namespace

TEST_SUITE("process") {
  TEST_CASE("process: a child runs a function with arguments and its result comes back") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, square, 7);
      CHECK(p.pid() > 0);
      CHECK(p.pid() != ::getpid());
      CHECK(p.name().rfind("process-", 0) == 0);
      CHECK_FALSE(p.daemon());
      const int result = co_await p.async_result();
      CHECK(result == 49);
      auto status = co_await p.async_join();
      CHECK(status.success());
      CHECK(p.exit_code() == 0);
    });
  }

  TEST_CASE("process: a discarded co_await of async_join and async_stop leaves the handle whole") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto joined = herd::start(ex, square, 3);
      co_await joined.async_join();
      CHECK(joined.exit_code() == 0);
      auto stopped = herd::start(ex, [] { ::pause(); });
      co_await stopped.async_stop();
      CHECK(stopped.exit_code() == -SIGTERM);
    });
  }

  TEST_CASE("process: results of every codec kind come back: int, string, vector, struct, map") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto text = herd::start(ex, [](int n) { return std::string(static_cast<std::size_t>(n), 'z'); }, 5);
      auto list = herd::start(ex, [] { return std::vector<int>{1, 2, 3}; });
      auto record = herd::start(ex, [](std::string label) { return point{3, label + "!", {1.5, 2.5}}; },
                                std::string("p"));
      auto table = herd::start(ex, [] { return std::map<std::string, int>{{"a", 1}, {"b", 2}}; });
      auto big = herd::start(ex, [] { return std::string(5 << 20, 'x'); });  // far larger than a pipe
      const std::string t = co_await text.async_result();
      CHECK(t == "zzzzz");
      const std::vector<int> l = co_await list.async_result();
      CHECK(l == std::vector<int>{1, 2, 3});
      const point r = co_await record.async_result();
      CHECK(r.x == 3);
      CHECK(r.label == "p!");
      CHECK(r.values.size() == 2);
      const std::map<std::string, int> m = co_await table.async_result();
      CHECK(m.at("b") == 2);
      const std::string b = co_await big.async_result();
      CHECK(b.size() == (5u << 20));
    });
  }

  TEST_CASE("process: a void function's result is just its success") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, [] {});
      co_await p.async_result();
      CHECK(p.exit_code() == 0);
    });
  }

  TEST_CASE("process: an exception in the child is rethrown as child_error with its type, message, pid and function") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, herd::process_options{.name = "failing"}, [] {
        throw custom_failure("the disk is full");
        return 1;
      });
      try {
        co_await p.async_result();
        FAIL("no exception");
      } catch (const herd::child_error& e) {
        CHECK(e.code() == herd::errc::child_exception);
        CHECK(e.exception_type().find("custom_failure") != std::string::npos);
        CHECK(e.exception_message() == "the disk is full");
        CHECK(e.pid() == p.pid());
        CHECK(e.process_name() == "failing");
        CHECK(std::string(e.what()).find("the disk is full") != std::string::npos);
        CHECK(std::string(e.what()).find("failing") != std::string::npos);
      }
      CHECK(p.exit_code() == 1);  // Python's exit code for an exception in run()

      auto std_error = herd::start(ex, [] { return std::vector<int>().at(3); });
      try {
        co_await std_error.async_result();
        FAIL("no exception");
      } catch (const herd::child_error& e) {
        CHECK(e.exception_type() == "std::out_of_range");
      }

      auto not_std = herd::start(ex, [] { throw 42; });
      try {
        co_await not_std.async_result();
        FAIL("no exception");
      } catch (const herd::child_error& e) {
        CHECK(e.exception_type() == "int");
      }
    });
  }

  TEST_CASE("process: a child that crashes or exits early is reported with its signal or code, never as a hang") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto aborts = herd::start(ex, [] {
        std::abort();
        return 0;
      });
      try {
        co_await aborts.async_result();
        FAIL("no exception");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::child_killed);
        CHECK(std::string(e.what()).find("SIGABRT") != std::string::npos);
      }
      CHECK(aborts.exit_code() == -SIGABRT);

      auto segfaults = herd::start(ex, [] {
        std::raise(SIGSEGV);
        return 0;
      });
      auto status = co_await segfaults.async_join();
      CHECK(status.signal() == SIGSEGV);

      auto exits = herd::start(ex, [] {
        ::_exit(3);
        return 0;
      });
      auto [error, value] = co_await exits.async_result(asio::as_tuple(asio::deferred));
      REQUIRE(error);
      try {
        std::rethrow_exception(error);
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::child_exited);
        CHECK(std::string(e.what()).find("exited with code 3") != std::string::npos);
      }
    });
  }

  TEST_CASE("process: a child killed with SIGKILL while the parent awaits its result") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, [] {
        loop_forever();
        return 1;
      });
      asio::steady_timer timer(ex, 50ms);
      timer.async_wait([pid = p.pid()](herd::error_code) { ::kill(pid, SIGKILL); });
      try {
        co_await p.async_result();
        FAIL("no exception");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::child_killed);
      }
      CHECK(p.status()->signal() == SIGKILL);
    });
  }

  TEST_CASE("process: a cancelled async_join leaves the handle usable and a later join works") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, [] { ::usleep(300000); });
      auto [ec, status] = co_await herd::with_timeout(p.async_join(), 20ms, asio::as_tuple(asio::deferred));
      CHECK(ec == herd::errc::timed_out);
      CHECK(p.is_alive());
      CHECK_FALSE(p.exit_code().has_value());
      auto final_status = co_await p.async_join();
      CHECK(final_status.success());
    });
  }

  TEST_CASE("process: a coroutine runs in the child on an io_context of its own") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, [](int ms) -> asio::awaitable<int> {
        auto child_executor = co_await asio::this_coro::executor;
        asio::steady_timer timer(child_executor, std::chrono::milliseconds(ms));
        co_await timer.async_wait(asio::deferred);
        co_return ms * 2;
      }, 20);
      const int doubled = co_await p.async_result();
      CHECK(doubled == 40);
    });
  }

  TEST_CASE("process: a class with run() and its fields runs like Python's Process subclass") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, greeter{"herd", 2});
      const std::string greeting = co_await p.async_result();
      CHECK(greeting == "hello herd;hello herd;");
    });
  }

  TEST_CASE("the child works on a copy: captures are there, changes stay in the child") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      global_counter = 10;
      std::vector<int> captured{1, 2, 3};
      auto p = herd::start(ex, [captured]() mutable {
        global_counter += 5;
        captured.push_back(4);
        return global_counter * 100 + static_cast<int>(captured.size());
      });
      const int seen = co_await p.async_result();
      CHECK(seen == 1504);
      CHECK(global_counter == 10);
    });
  }

  TEST_CASE("process: this_process names the child and knows its parent") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      CHECK(herd::this_process::name() == "main");
      auto p = herd::start(ex, herd::process_options{.name = "worker-7"}, [] {
        return herd::this_process::name() + " " + std::to_string(herd::this_process::ppid()) + " " +
               std::to_string(herd::this_process::pid());
      });
      const std::string seen = co_await p.async_result();
      CHECK(seen == "worker-7 " + std::to_string(::getpid()) + " " + std::to_string(p.pid()));
    });
  }

  TEST_CASE("this_process::pid() is right in a child made by a plain fork(), and in its child") {
    leak_check guard;
    const int parent = herd::this_process::pid();
    CHECK(parent == ::getpid());
    const pid_t pid = ::fork();
    if (pid == 0) {
      // herd caches the pid: a stale cache would name the parent here.
      if (herd::this_process::pid() != ::getpid()) ::_exit(1);
      const pid_t grandchild = ::fork();
      if (grandchild == 0) ::_exit(herd::this_process::pid() == ::getpid() ? 0 : 1);
      int status = 0;
      ::waitpid(grandchild, &status, 0);
      ::_exit(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 2);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  TEST_CASE("process: two hundred children started at once are all joined, with no zombie and no leaked fd") {
    leak_check guard;
    herd_test::run(
        [](asio::any_io_executor ex) -> asio::awaitable<void> {
          std::vector<herd::process<int>> children;
          for (int i = 0; i < 200; ++i) children.push_back(herd::start(ex, [](int n) { return n * 3; }, i));
          int sum = 0;
          for (auto& c : children) sum += co_await c.async_result();
          CHECK(sum == 3 * 199 * 200 / 2);
        },
        120s);
  }

  TEST_CASE("process: terminate() stops a child in an infinite loop, one ignoring SIGTERM gets SIGKILL after the grace") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto looping = herd::start(ex, [] { loop_forever(); });
      looping.terminate();
      auto status = co_await looping.async_join();
      CHECK(status.signal() == SIGTERM);
      CHECK(status.reason() == herd::exit_reason::stopped);

      herd::process_options stubborn_options;
      stubborn_options.stop.grace = 200ms;
      const std::string ready = (std::filesystem::temp_directory_path() /
                                 ("herd-stubborn-" + std::to_string(::getpid()))).string();
      std::filesystem::remove(ready);
      auto stubborn = herd::start(ex, stubborn_options, [](std::string marker) {
        std::signal(SIGTERM, SIG_IGN);
        std::ofstream(marker) << "ignoring SIGTERM";
        loop_forever();
      }, ready);
      asio::steady_timer settle(ex);  // until it has installed its disposition
      for (int i = 0; i < 1000 && !std::filesystem::exists(ready); ++i) {
        settle.expires_after(10ms);
        co_await settle.async_wait(asio::deferred);
      }
      std::filesystem::remove(ready);
      const auto start = std::chrono::steady_clock::now();
      auto stopped = co_await stubborn.async_stop();
      CHECK(stopped.signal() == SIGKILL);
      CHECK(std::chrono::steady_clock::now() - start >= 150ms);
    });
  }

  TEST_CASE("process: results on both sides of the inline limit, and a long exception message, arrive exact") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      // Up to 16 KiB the outcome is sent inline; beyond, it travels in a memfd.
      for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(16 * 1024 - 8), std::size_t(16 * 1024),
                               std::size_t(16 * 1024 + 1), std::size_t(70'000), std::size_t(1) << 20}) {
        auto p = herd::start(ex, patterned, size);
        const std::string got = co_await p.async_result();
        CHECK_MESSAGE(got == patterned(size), "a result of ", size, " bytes");
      }
      auto failing = herd::start(ex, []() -> int { throw std::runtime_error(patterned(100'000)); });
      try {
        (void)co_await failing.async_result();
        FAIL("no exception");
      } catch (const herd::child_error& e) {
        CHECK(e.exception_type() == "std::runtime_error");
        CHECK(e.exception_message() == patterned(100'000));
      }
    });
  }

  TEST_CASE("process: blocking join and result work without a running event loop, even for large results") {
    leak_check guard;
    asio::io_context io;  // never run
    auto p = herd::start(io.get_executor(), [] { return std::string(3 << 20, 'q'); });
    auto status = p.join();
    CHECK(status.success());
    CHECK(p.result().size() == (3u << 20));

    auto slow = herd::start(io.get_executor(), [] { ::usleep(500000); });
    CHECK_FALSE(slow.join(20ms).has_value());
    CHECK(slow.is_alive());
    slow.kill();
    CHECK(slow.join().signal() == SIGKILL);

    auto failing = herd::start(io.get_executor(), [] {
      throw std::logic_error("nope");
      return 0;
    });
    CHECK_THROWS_AS(failing.result(), herd::child_error);
  }

  TEST_CASE("process: environment additions and stdio options reach the child") {
    leak_check guard;
    const auto file = std::filesystem::temp_directory_path() / ("herd-proc-" + std::to_string(::getpid()) + ".txt");
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::process_options options;
      options.env = {{"HERD_CHILD_VAR", "set-by-parent"}};
      options.std_out = herd::stdio::file(file);
      auto p = herd::start(ex, options, [] {
        std::printf("printed by the child\n");
        const char* value = std::getenv("HERD_CHILD_VAR");
        return std::string(value ? value : "");
      });
      const std::string value = co_await p.async_result();
      CHECK(value == "set-by-parent");
      std::ifstream in(file);
      CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "printed by the child\n");

      herd::process_options bad;
      bad.std_in = herd::stdio::pipe();
      CHECK_THROWS_WITH_AS(herd::start(ex, bad, [] {}), doctest::Contains("stdin"), boost::system::system_error);
    });
    std::filesystem::remove(file);
  }

  TEST_CASE("process: a daemon may not start children, as in Python") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto daemon = herd::start(ex, herd::process_options{.name = "keeper", .daemon = true}, [] {
        asio::io_context io;
        try {
          auto p = herd::start(io.get_executor(), [] {});
          return std::string("started");
        } catch (const boost::system::system_error& e) {
          return std::string(e.what());
        }
      });
      CHECK(daemon.daemon());
      const std::string answer = co_await daemon.async_result();
      CHECK(answer.find("daemon") != std::string::npos);
      CHECK(answer.find("keeper") != std::string::npos);
    });
  }

  TEST_CASE("process: active_children lists what runs, and cpu_count honours the affinity mask") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, herd::process_options{.name = "listed"}, [] { ::usleep(200000); });
      auto running = herd::active_children();
      const bool listed = std::any_of(running.begin(), running.end(),
                                      [&](const herd::child_info& c) { return c.pid == p.pid() && c.name == "listed"; });
      CHECK(listed);
      co_await p.async_join();
      running = herd::active_children();
      CHECK(std::none_of(running.begin(), running.end(), [&](const herd::child_info& c) { return c.pid == p.pid(); }));

      cpu_set_t set;
      CPU_ZERO(&set);
      REQUIRE(::sched_getaffinity(0, sizeof set, &set) == 0);
      CHECK(herd::cpu_count() == static_cast<unsigned>(CPU_COUNT(&set)));
      CHECK(herd::cpu_count() >= 1);
    });
  }

  TEST_CASE("process: destroying a running handle stops the child, detach lets it finish and be reaped") {
    leak_check guard;
    int stopped_pid = 0;
    const auto marker = std::filesystem::temp_directory_path() / ("herd-detach-" + std::to_string(::getpid()));
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      {
        auto p = herd::start(ex, [] { loop_forever(); });
        stopped_pid = p.pid();
      }
      {
        auto p = herd::start(ex, mark_after, marker.string(), 100000);
        p.detach();
        CHECK_FALSE(p.valid());
      }
      // Detached children are reaped whenever herd is asked who runs (or starts another one).
      asio::steady_timer timer(ex);
      for (int i = 0; i < 300 && !herd_test::child_pids().empty(); ++i) {
        (void)herd::active_children();
        timer.expires_after(10ms);
        co_await timer.async_wait(asio::deferred);
      }
    });
    CHECK(herd_test::read_stat(stopped_pid).state == '?');
    CHECK(std::filesystem::exists(marker));
    std::filesystem::remove(marker);
  }

  TEST_CASE("fork trap: text the parent had not flushed is not printed twice") {
    auto result = in_helper_process([] {
      std::cout << "parent text before the fork;";  // still in the stream's buffer
      std::printf("C text before the fork;");
      asio::io_context io;
      auto p = herd::start(io.get_executor(), [] { std::cout << "child text;" << std::flush; });
      p.join();
      std::cout << "parent text after\n";
    });
    CHECK(WIFEXITED(result.wait_status));
    auto count = [&](const std::string& needle) {
      std::size_t n = 0;
      for (auto at = result.out.find(needle); at != std::string::npos; at = result.out.find(needle, at + 1)) ++n;
      return n;
    };
    CHECK(count("parent text before the fork;") == 1);
    CHECK(count("C text before the fork;") == 1);
    CHECK(count("child text;") == 1);
  }

  TEST_CASE("process: a child's SIGTERM never reaches the parent's asio::signal_set (fork trap 2)") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      asio::signal_set signals(ex, SIGTERM);
      auto parent_signalled = std::make_shared<bool>(false);  // the handler outlives this frame
      signals.async_wait([parent_signalled](herd::error_code ec, int) { *parent_signalled = !ec; });
      auto p = herd::start(ex, [] { std::raise(SIGTERM); });
      auto status = co_await p.async_join();
      CHECK(status.signal() == SIGTERM);  // the child died of it: its disposition was reset
      asio::steady_timer settle(ex, 100ms);
      co_await settle.async_wait(asio::deferred);
      CHECK_FALSE(*parent_signalled);
      signals.cancel();
    });
  }

  TEST_CASE("process: at a normal exit daemons are stopped and other children are joined") {
    const auto marker = std::filesystem::temp_directory_path() / ("herd-exit-" + std::to_string(::getpid()));
    auto result = in_helper_process([&marker] {
      asio::io_context io;
      auto daemon = herd::start(io.get_executor(), herd::process_options{.daemon = true}, [] { loop_forever(); });
      auto worker = herd::start(io.get_executor(), mark_after, marker.string(), 300000);
      std::cout << daemon.pid() << " " << worker.pid() << "\n" << std::flush;
      daemon.detach();
      worker.detach();
      // Leaves main normally: herd's atexit handler stops the daemon and joins the worker.
    });
    CHECK(WIFEXITED(result.wait_status));
    std::istringstream pids(result.out);
    int daemon_pid = 0, worker_pid = 0;
    pids >> daemon_pid >> worker_pid;
    CHECK(daemon_pid > 0);
    CHECK(std::filesystem::exists(marker));  // the worker finished before the parent was gone
    CHECK(herd_test::wait_until_gone(daemon_pid));
    CHECK(herd_test::wait_until_gone(worker_pid));
    std::filesystem::remove(marker);
  }

  TEST_CASE("process: when the parent is killed with SIGKILL its daemon and non-daemon children die") {
    int report[2];
    REQUIRE(::pipe(report) == 0);
    std::cout.flush();
    const pid_t parent = ::fork();
    if (parent == 0) {
      ::close(report[0]);
      asio::io_context io;
      auto daemon = herd::start(io.get_executor(), herd::process_options{.daemon = true}, [] { loop_forever(); });
      auto worker = herd::start(io.get_executor(), [] { loop_forever(); });
      const int pids[2] = {daemon.pid(), worker.pid()};
      if (::write(report[1], pids, sizeof pids) != sizeof pids) ::_exit(2);
      loop_forever();
    }
    ::close(report[1]);
    int pids[2] = {0, 0};
    REQUIRE(::read(report[0], pids, sizeof pids) == sizeof pids);
    ::close(report[0]);
    ::kill(parent, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(parent, &status, 0) == parent);
    CHECK(herd_test::wait_until_gone(pids[0]));
    CHECK(herd_test::wait_until_gone(pids[1]));
  }

  TEST_CASE("process: a function child does not keep other children's pipes open") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      // cat ends when its stdin closes; a fork child holding a copy of that pipe would stop it.
      herd::child cat(ex, herd::command("cat").std_in(herd::stdio::pipe()).std_out(herd::stdio::null()));
      auto sleeper = herd::start(ex, [] { ::usleep(2000000); });
      cat.close_stdin();
      auto [ec, status] = co_await herd::with_timeout(cat.async_wait(), 1500ms, asio::as_tuple(asio::deferred));
      CHECK_FALSE(ec);
      CHECK(status.success());
      sleeper.kill();
      co_await sleeper.async_join();
    });
  }
}

TEST_SUITE("start methods of function children") {
  TEST_CASE("spawn and forkserver refuse a capturing lambda with why, and a plain struct with run() travels") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (const auto method : {herd::start_method::spawn, herd::start_method::forkserver}) {
        herd::process_options options;
        options.start_method = method;
        const int offset = 5;
        CHECK_THROWS_WITH_AS(herd::start(ex, options, [offset](int x) { return x + offset; }, 1),
                             doctest::Contains(method == herd::start_method::spawn ? "started by spawn"
                                                                                   : "started by forkserver"),
                             boost::system::system_error);
        try {
          herd::start(ex, options, [offset](int x) { return x + offset; }, 1);
        } catch (const boost::system::system_error& e) {
          CHECK(e.code() == herd::errc::invalid_argument);
          CHECK(std::string(e.what()).find("captures") != std::string::npos);
          CHECK(std::string(e.what()).find("lambda") != std::string::npos);  // names the function's type
        }
        // A C string argument arrives as std::string; a struct's fields arrive as its state.
        auto p = herd::start(ex, options, greeter{"again", 3});
        const std::string greeting = co_await p.async_result();
        CHECK(greeting == "hello again;hello again;hello again;");
        auto shouted = herd::start(ex, options, [](std::string s) { return s + "!"; }, "hey");
        const std::string shout = co_await shouted.async_result();
        CHECK(shout == "hey!");
        // The child is this process's own, whichever way it was started.
        auto parent_of = herd::start(ex, options, [] { return herd::this_process::ppid(); });
        const int parent = co_await parent_of.async_result();
        CHECK(parent == ::getpid());
      }
      // The same capturing lambda forks as ever.
      herd::process_options forked;
      forked.start_method = herd::start_method::fork;
      const int offset = 5;
      auto p = herd::start(ex, forked, [offset](int x) { return x + offset; }, 1);
      const int sum = co_await p.async_result();
      CHECK(sum == 6);
    });
  }
}
