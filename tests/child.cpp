#include <herd/child.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/error.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <optional>
#include <cstdlib>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

template <>
struct doctest::StringMaker<herd::exit_status> {
  static doctest::String convert(const herd::exit_status& status) { return status.to_string().c_str(); }
};

namespace {

template <typename... Args>
herd::command test_child(Args&&... args) {
  return herd::command(HERD_TEST_CHILD, std::forward<Args>(args)...);
}

// Whether this kernel keeps the exit status of a reaped process for its pidfd (Linux 6.15+).
// Probed once, with SIGCHLD at its default: were it ignored, the probe's child could vanish first.
bool kernel_keeps_exit_status() {
  static const bool kept = [] {
    auto previous = std::signal(SIGCHLD, SIG_DFL);
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(5);
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    int raw = 0;
    ::waitpid(pid, &raw, 0);
    std::signal(SIGCHLD, previous);
    struct {
      std::uint64_t mask, cgroupid;
      std::uint32_t ids[11];
      std::int32_t exit_code;
    } info{};
    info.mask = 1u << 3;
    const bool result = ::ioctl(pidfd, _IOWR(0xFF, 11, decltype(info)), &info) == 0 && (info.mask & (1u << 3)) != 0;
    ::close(pidfd);
    return result;
  }();
  return kept;
}

// What herd reports for a child someone else reaped: the real status where the kernel keeps it,
// else its documented stand-in.
herd::exit_status expected_after_theft(herd::exit_status real) {
  return kernel_keeps_exit_status() ? real : herd::exit_status::exited(255);
}

herd::command piped(herd::command cmd) {
  return std::move(cmd).std_in(herd::stdio::pipe()).std_out(herd::stdio::pipe()).std_err(herd::stdio::pipe());
}


}  // namespace

TEST_SUITE("child") {
  TEST_CASE("lines written to stdin come back from stdout, and closing stdin ends the child") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, piped(test_child("echo")));
      CHECK(c.pid() > 0);
      co_await c.std_in().async_write("first\nsecond\n");
      CHECK(co_await c.std_out().async_read_line() == "first");
      CHECK(co_await c.std_out().async_read_line() == "second");
      c.close_stdin();
      auto [ec, line] = co_await c.std_out().async_read_line(asio::as_tuple(asio::deferred));
      CHECK(ec == asio::error::eof);
      auto status = co_await c.async_wait();
      CHECK(status.success());
      CHECK(c.status() == status);
      CHECK_FALSE(c.is_alive());
    });
  }

  TEST_CASE("the output streams are Asio streams: asio::async_read reads them to EOF") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("write-out", "300000").std_out(herd::stdio::pipe()));
      std::string data;
      auto [ec, n] = co_await asio::async_read(c.std_out(), asio::dynamic_buffer(data), asio::as_tuple(asio::deferred));
      CHECK(ec == asio::error::eof);
      CHECK(n == 300000);
      CHECK(data.size() == 300000);
      CHECK(data.substr(0, 3) == "abc");
      CHECK((co_await c.async_wait()).success());
    });
  }

  TEST_CASE("a last line without newline is returned before EOF") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, piped(test_child("echo")));
      co_await c.std_in().async_write("no newline");
      c.std_in().close();
      CHECK(co_await c.std_out().async_read_line() == "no newline");
      auto [ec, line] = co_await c.std_out().async_read_line(asio::as_tuple(asio::deferred));
      CHECK(ec == asio::error::eof);
      co_await c.async_wait();
    });
  }

  TEST_CASE("a missing program throws program_not_found naming the program, and leaks nothing") {
    leak_check guard;
    asio::io_context io;
    try {
      herd::child c(io.get_executor(), herd::command("herd-no-such-program", "x"));
      FAIL("no exception");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::program_not_found);
      CHECK(std::string(e.what()).find("herd-no-such-program") != std::string::npos);
      CHECK(std::string(e.what()).find("PATH") != std::string::npos);
    }
    herd::error_code ec;
    herd::child c(io.get_executor(), herd::command("./herd-no-such-program"), ec);
    CHECK(ec == herd::errc::program_not_found);
    CHECK_FALSE(c.valid());
  }

  TEST_CASE("a file without execute permission is not a program, one of unknown format fails to start") {
    leak_check guard;
    const auto dir = std::filesystem::temp_directory_path() / ("herd-exec-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto data = dir / "data.txt";
    std::ofstream(data) << "not a program\n";
    asio::io_context io;
    herd::error_code ec;
    herd::child plain(io.get_executor(), herd::command(data.string()), ec);
    CHECK(ec == herd::errc::program_not_found);

    std::filesystem::permissions(data, std::filesystem::perms::owner_all);
    try {
      herd::child garbage(io.get_executor(), herd::command(data.string()));
      FAIL("no exception");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::spawn_failed);
      CHECK(std::string(e.what()).find("execve") != std::string::npos);
      CHECK(std::string(e.what()).find("Exec format error") != std::string::npos);
    }
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("a bad working directory fails with bad_working_directory naming the directory") {
    leak_check guard;
    asio::io_context io;
    try {
      herd::child c(io.get_executor(), test_child("exit", "0").current_dir("/herd/no/such/dir"));
      FAIL("no exception");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::bad_working_directory);
      CHECK(std::string(e.what()).find("/herd/no/such/dir") != std::string::npos);
    }
  }

  TEST_CASE("an unusable stdio file fails with bad_stdio naming the file") {
    leak_check guard;
    asio::io_context io;
    try {
      herd::child c(io.get_executor(), test_child("exit", "0").std_in(herd::stdio::file("/herd/no/input")));
      FAIL("no exception");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::bad_stdio);
      CHECK(std::string(e.what()).find("/herd/no/input") != std::string::npos);
      CHECK(std::string(e.what()).find("stdin") != std::string::npos);
    }
    herd::error_code ec;
    herd::child wrong(io.get_executor(), test_child("exit", "0").std_out(herd::stdio::bytes("x")), ec);
    CHECK(ec == herd::errc::bad_stdio);
    herd::child closed_fd(io.get_executor(), test_child("exit", "0").std_out(herd::stdio::fd(987)), ec);
    CHECK(ec == herd::errc::bad_stdio);
  }

  TEST_CASE("exit codes and signals are reported apart") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child exits(ex, test_child("exit", "7"));
      auto status = co_await exits.async_wait();
      CHECK(status.exited());
      CHECK(status.code() == 7);
      CHECK(status.reason() == herd::exit_reason::normal);

      herd::child segfaults(ex, test_child("kill-self", std::to_string(SIGSEGV)));
      status = co_await segfaults.async_wait();
      CHECK(status.signaled());
      CHECK(status.signal() == SIGSEGV);

      herd::child killed(ex, test_child("sleep", "100000"));
      killed.kill();
      status = co_await killed.async_wait();
      CHECK(status.signal() == SIGKILL);
      CHECK(status.reason() == herd::exit_reason::normal);

      herd::child interrupted(ex, test_child("sleep", "100000"));
      interrupted.interrupt();
      CHECK((co_await interrupted.async_wait()).signal() == SIGINT);
    });
  }

  TEST_CASE("environment: set, removed, cleared") {
    leak_check guard;
    ::setenv("HERD_TEST_INHERITED", "from-parent", 1);
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto print = [&](herd::command cmd) -> asio::awaitable<std::string> {
        herd::child c(ex, std::move(cmd).std_out(herd::stdio::pipe()));
        auto line = co_await c.std_out().async_read_line();
        co_await c.async_wait();
        co_return line;
      };
      CHECK(co_await print(test_child("print-env", "HERD_TEST_INHERITED")) == "from-parent");
      CHECK(co_await print(test_child("print-env", "HERD_TEST_SET").env("HERD_TEST_SET", "x=y")) == "x=y");
      CHECK(co_await print(test_child("print-env", "HERD_TEST_INHERITED").env("HERD_TEST_INHERITED", "over")) ==
            "over");
      CHECK(co_await print(test_child("print-env", "HERD_TEST_INHERITED").env_remove("HERD_TEST_INHERITED")) ==
            "<unset>");
      CHECK(co_await print(test_child("print-env", "HERD_TEST_INHERITED").env_clear()) == "<unset>");
      CHECK(co_await print(test_child("print-env", "ONLY").env_clear().env("ONLY", "1")) == "1");
    });
    ::unsetenv("HERD_TEST_INHERITED");
  }

  TEST_CASE("a program is found in the PATH of the child's environment") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::string dir = std::filesystem::path(HERD_TEST_CHILD).parent_path().string();
      const std::string name = std::filesystem::path(HERD_TEST_CHILD).filename().string();
      herd::child c(ex, herd::command(name, {"exit", "4"}).env("PATH", dir));
      CHECK((co_await c.async_wait()).code() == 4);
    });
  }

  TEST_CASE("arguments arrive verbatim and the working directory is set") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child args(ex, test_child("print-args", "two words", "", "$HOME", "it's").std_out(herd::stdio::pipe()));
      CHECK(co_await args.std_out().async_read_all() == "two words\n\n$HOME\nit's\n");
      co_await args.async_wait();

      herd::child cwd(ex, test_child("print-cwd").current_dir("/tmp").std_out(herd::stdio::pipe()));
      CHECK(co_await cwd.std_out().async_read_line() == "/tmp");
      co_await cwd.async_wait();
    });
  }

  TEST_CASE("the child leads its own process group, with default signals and only stdio open") {
    leak_check guard;
    // A parent that ignores SIGPIPE and blocks SIGUSR1, with a descriptor lacking O_CLOEXEC.
    auto previous_pipe = std::signal(SIGPIPE, SIG_IGN);
    sigset_t usr1, previous_mask;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &previous_mask);
    const int inheritable = ::open("/dev/null", O_RDONLY);
    REQUIRE(inheritable > 2);
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child group(ex, test_child("print-pgid").std_out(herd::stdio::pipe()));
      const auto line = co_await group.std_out().async_read_line();
      CHECK(line == std::to_string(group.pid()) + " " + std::to_string(group.pid()));
      co_await group.async_wait();

      herd::child signals(ex, test_child("signal-mask").std_out(herd::stdio::pipe()));
      CHECK(co_await signals.std_out().async_read_line() == "blocked 0 sigpipe default");
      co_await signals.async_wait();

      herd::child fds(ex, test_child("list-fds").std_out(herd::stdio::pipe()));
      CHECK(co_await fds.std_out().async_read_line() == "0 1 2");
      co_await fds.async_wait();
    });
    ::close(inheritable);
    pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
    std::signal(SIGPIPE, previous_pipe);
  }

  TEST_CASE("terminate() sends SIGTERM and reports reason stopped") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("sleep", "100000"));
      c.terminate();
      auto status = co_await c.async_wait();
      CHECK(status.signal() == SIGTERM);
      CHECK(status.reason() == herd::exit_reason::stopped);
    });
  }

  TEST_CASE("a child that handles SIGTERM exits on its own terms within the grace period") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("graceful-sigterm", "17").std_out(herd::stdio::pipe()));
      CHECK(co_await c.std_out().async_read_line() == "ready");
      auto status = co_await c.async_stop();
      CHECK(status.code() == 17);
      CHECK(status.reason() == herd::exit_reason::stopped);
    });
  }

  TEST_CASE("a child that ignores SIGTERM is killed with SIGKILL after the grace period") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("ignore-sigterm")
                            .std_out(herd::stdio::pipe())
                            .stop({true, SIGTERM, std::chrono::milliseconds(300)}));
      CHECK(co_await c.std_out().async_read_line() == "ready");
      const auto start = std::chrono::steady_clock::now();
      auto status = co_await c.async_stop();
      const auto took = std::chrono::steady_clock::now() - start;
      CHECK(status.signal() == SIGKILL);
      CHECK(status.reason() == herd::exit_reason::stopped);
      CHECK(took >= 250ms);
      CHECK(took < 10s);
    });
  }

  TEST_CASE("the stop policy closes stdin first") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      // Signal 0 sends nothing: the child can only end because its stdin was closed.
      herd::child c(ex, piped(test_child("stdin-eof")).stop({true, 0, std::chrono::milliseconds(5000)}));
      CHECK(co_await c.std_out().async_read_line() == "ready");
      c.terminate();
      CHECK(co_await c.std_out().async_read_line() == "eof");
      auto status = co_await c.async_wait();
      CHECK(status.success());
      CHECK(status.reason() == herd::exit_reason::stopped);
    });
  }

  TEST_CASE("a cancelled async_wait leaves the child untouched and a later wait works") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("sleep", "300"));
      auto [ec, status] = co_await herd::with_timeout(c.async_wait(), 20ms, asio::as_tuple(asio::deferred));
      CHECK(ec == herd::errc::timed_out);
      CHECK(c.is_alive());
      auto final_status = co_await c.async_wait();
      CHECK(final_status.success());
      CHECK(final_status.reason() == herd::exit_reason::normal);
    });
  }

  TEST_CASE("waiting on an awaitable operator with a timer cancels only the wait") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      herd::child c(ex, test_child("sleep", "100000"));
      asio::steady_timer timer(ex, 20ms);
      auto winner = co_await (c.async_wait(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
      CHECK(winner.index() == 1);
      CHECK(c.is_alive());
      c.kill();
      CHECK((co_await c.async_wait()).signal() == SIGKILL);
    });
  }

  TEST_CASE("destroying a running child stops and reaps it") {
    leak_check guard;
    int pid = 0;
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      {
        herd::child c(ex, test_child("ignore-sigterm").stop({true, SIGTERM, std::chrono::milliseconds(100)}));
        pid = c.pid();
      }
      // The stop goes on in the background on this executor.
      asio::steady_timer timer(ex);
      for (int i = 0; i < 200 && !herd_test::child_pids().empty(); ++i) {
        timer.expires_after(10ms);
        co_await timer.async_wait(asio::deferred);
      }
    });
    CHECK(herd_test::read_stat(pid).state == '?');
  }

  TEST_CASE("destroying a running child whose executor never runs again still leaves no zombie") {
    leak_check guard;
    {
      asio::io_context io;
      herd::child c(io.get_executor(), test_child("sleep", "100000"));
    }
  }

  TEST_CASE("a grandchild left in the process group does not survive its parent") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("grandchild", "0").std_out(herd::stdio::pipe()));
      const int grandchild = std::stoi(co_await c.std_out().async_read_line());
      CHECK((co_await c.async_wait()).success());
      CHECK(herd_test::wait_until_gone(grandchild));
    });
  }

  TEST_CASE("a grandchild survives when the command keeps descendants") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("grandchild", "0").std_out(herd::stdio::pipe()).keep_descendants(true));
      const int grandchild = std::stoi(co_await c.std_out().async_read_line());
      CHECK((co_await c.async_wait()).success());
      CHECK_FALSE(herd_test::wait_until_gone(grandchild, 100ms));
      ::kill(grandchild, SIGKILL);
      CHECK(herd_test::wait_until_gone(grandchild));
    });
  }

  TEST_CASE("stdout and stderr of a child that is not a pipe are refused by name") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("exit", "0").std_out(herd::stdio::null()));
      CHECK_THROWS_WITH_AS(c.std_out(), doctest::Contains("stdout"), boost::system::system_error);
      CHECK_THROWS_AS(c.std_in(), boost::system::system_error);
      co_await c.async_wait();
    });
  }

  TEST_CASE("writing to a child that closed its stdin fails with broken_pipe, not SIGPIPE") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("exit", "0").std_in(herd::stdio::pipe()));
      co_await c.async_wait();
      auto [ec, n] = co_await c.std_in().async_write(std::string(100000, 'x'), asio::as_tuple(asio::deferred));
      CHECK(ec == asio::error::broken_pipe);
    });
  }

  TEST_CASE("stdio::bytes is fed to stdin in the background") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("count-stdin")
                            .std_in(herd::stdio::bytes(std::string(1 << 20, 'z')))
                            .std_out(herd::stdio::pipe()));
      CHECK(co_await c.std_out().async_read_line() == std::to_string(1 << 20));
      CHECK((co_await c.async_wait()).success());
    });
  }

  TEST_CASE("fifty children at once are all reaped and leave no descriptor behind") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::vector<herd::child> children;
      for (int i = 0; i < 50; ++i)
        children.emplace_back(ex, test_child("exit", std::to_string(i % 5)).std_out(herd::stdio::pipe()));
      for (int i = 0; i < 50; ++i) CHECK((co_await children[i].async_wait()).code() == i % 5);
    });
  }

  TEST_CASE("a parent that ignores SIGCHLD still gets its children's real exit status") {
    leak_check guard;
    auto previous = std::signal(SIGCHLD, SIG_IGN);  // daemons do this; the kernel would auto-reap
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      // Many, since the kernel records an auto-reaped child's status a moment after its pidfd wakes us.
      std::vector<herd::child> children;
      for (int i = 0; i < 40; ++i) children.emplace_back(ex, test_child("exit", std::to_string(i % 8)));
      for (int i = 0; i < 40; ++i)
        CHECK(co_await children[i].async_wait() == expected_after_theft(herd::exit_status::exited(i % 8)));
    });
    std::signal(SIGCHLD, previous);
  }

  TEST_CASE("a status taken by a waitpid(-1) elsewhere is still reported") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("kill-self", std::to_string(SIGUSR2)));
      int raw = 0;
      // Another library reaping "any child" takes it first.
      CHECK(::waitpid(-1, &raw, 0) == c.pid());
      auto status = co_await c.async_wait();
      CHECK(status == expected_after_theft(herd::exit_status::signaled(SIGUSR2)));
    });
  }

  TEST_CASE("a signal reaches the leader of its group exactly once") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child c(ex, test_child("count-rt").std_out(herd::stdio::pipe()));
      auto ready = co_await c.std_out().async_read_line();
      CHECK(ready == "ready");
      c.signal(SIGRTMIN);  // real-time signals queue: a second delivery would count
      asio::steady_timer settle(ex, 100ms);
      co_await settle.async_wait(asio::deferred);
      c.signal(SIGTERM);
      auto count = co_await c.std_out().async_read_line();
      CHECK(count == "1");
      co_await c.async_wait();
    });
  }

  TEST_CASE("reads of a silent or a flooding child honour a timeout") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::child silent(ex, test_child("sleep", "100000").std_out(herd::stdio::pipe()));
      char byte;
      auto [some_ec, n] = co_await herd::with_timeout(silent.std_out().async_read_some(asio::buffer(&byte, 1)), 50ms,
                                                      asio::as_tuple(asio::deferred));
      CHECK(some_ec == herd::errc::timed_out);
      auto [line_ec, line] =
          co_await herd::with_timeout(silent.std_out().async_read_line(), 50ms, asio::as_tuple(asio::deferred));
      CHECK(line_ec == herd::errc::timed_out);

      // A writer that never pauses: every read finds data, so the cancellation arrives between
      // steps of the read loop, and must still end it.
      herd::child flood(ex, test_child("write-forever").std_out(herd::stdio::pipe()));
      const auto start = std::chrono::steady_clock::now();
      auto [all_ec, data] =
          co_await herd::with_timeout(flood.std_out().async_read_all(), 200ms, asio::as_tuple(asio::deferred));
      CHECK(all_ec == herd::errc::timed_out);
      CHECK(data.size() > 0);  // what was read so far comes with the error
      CHECK(std::chrono::steady_clock::now() - start < 10s);
      silent.kill();
      flood.kill();
      co_await silent.async_wait();
      co_await flood.async_wait();
    });
  }

  TEST_CASE("a stream moved out of its child outlives it safely") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::optional<herd::pipe_reader> kept;
      {
        herd::child c(ex, test_child("lines", "2").std_out(herd::stdio::pipe()));
        kept.emplace(std::move(c.std_out()));
        co_await c.async_wait();
      }
      auto text = co_await kept->async_read_all();
      CHECK(text == "line 1\nline 2\n");
    });
  }

  TEST_CASE("when the parent is killed with SIGKILL its children die too") {
    leak_check guard;
    int report[2];
    REQUIRE(::pipe(report) == 0);
    const pid_t parent = ::fork();
    if (parent == 0) {
      // The doomed parent: start a long child, say its pid, wait to be killed.
      ::close(report[0]);
      asio::io_context io;
      herd::child c(io.get_executor(), test_child("sleep", "100000"));
      const int pid = c.pid();
      if (::write(report[1], &pid, sizeof pid) != sizeof pid) ::_exit(2);
      for (;;) ::pause();
    }
    ::close(report[1]);
    int grandchild = 0;
    REQUIRE(::read(report[0], &grandchild, sizeof grandchild) == sizeof grandchild);
    ::close(report[0]);
    CHECK(herd_test::read_stat(grandchild).state != '?');
    ::kill(parent, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(parent, &status, 0) == parent);
    CHECK(herd_test::wait_until_gone(grandchild));
  }
}
