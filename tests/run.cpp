#include <herd/run.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/error.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

template <typename... Args>
herd::command test_child(Args&&... args) {
  return herd::command(HERD_TEST_CHILD, std::forward<Args>(args)...);
}

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

constexpr auto tuple = asio::as_tuple(asio::deferred);

}  // namespace

TEST_SUITE("run") {
  TEST_CASE("stdout, stderr and the exit code are captured") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto result = co_await herd::async_run(ex, test_child("lines", "3"));
      CHECK(result.success());
      CHECK(result.std_out == "line 1\nline 2\nline 3\n");
      CHECK(result.std_err.empty());
      CHECK(result.description.find("exited with code 0") != std::string::npos);

      auto failed = co_await herd::async_run(ex, test_child("exit", "5"));
      CHECK(failed.status.code() == 5);
      CHECK_FALSE(failed.success());

      auto errors = co_await herd::async_run(ex, test_child("write-err", "10"));
      CHECK(errors.std_err == "abcdefghij");
    });
  }

  TEST_CASE("with check, a failure is an error and the result still arrives") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::run_options check;
      check.check = true;
      auto [ec, result] = co_await herd::async_run(ex, test_child("exit", "3"), check, tuple);
      CHECK(ec == herd::errc::child_exited);
      CHECK(result.status.code() == 3);
      auto [killed_ec, killed] = co_await herd::async_run(ex, test_child("kill-self", "6"), check, tuple);
      CHECK(killed_ec == herd::errc::child_killed);
      CHECK(killed.status.signal() == SIGABRT);
      try {
        co_await herd::async_run(ex, test_child("exit", "3"), check);
        FAIL("no exception");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::child_exited);
        // The exception names the program, its pid and its exit code, not only the error.
        const std::string what = e.what();
        CHECK(what.find(HERD_TEST_CHILD) != std::string::npos);
        CHECK(what.find("pid") != std::string::npos);
        CHECK(what.find("code 3") != std::string::npos);
      }
    });
  }

  TEST_CASE("an awaited failure carries its whole description in what() and stays comparable with errc") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const auto what_of = [](auto&& op) -> asio::awaitable<std::pair<herd::error_code, std::string>> {
        try {
          co_await std::move(op);
        } catch (const boost::system::system_error& e) {
          co_return std::pair{e.code(), std::string(e.what())};
        }
        co_return std::pair{herd::error_code(), std::string()};
      };
      auto [missing, missing_what] = co_await what_of(herd::async_run(ex, herd::command("herd-no-such-program")));
      CHECK(missing == herd::errc::program_not_found);
      CHECK(missing_what.find("herd-no-such-program") != std::string::npos);
      CHECK(missing_what.find("PATH") != std::string::npos);

      auto [bad_file, bad_file_what] = co_await what_of(
          herd::async_run(ex, test_child("exit", "0").std_in(herd::stdio::file("/herd/no/such/file"))));
      CHECK(bad_file == herd::errc::bad_stdio);
      CHECK(bad_file_what.find("/herd/no/such/file") != std::string::npos);

      herd::run_options timeout;
      timeout.timeout = 50ms;
      auto [slow, slow_what] = co_await what_of(herd::async_run(ex, herd::command("sleep", "100"), timeout));
      CHECK(slow == herd::errc::timed_out);
      CHECK(slow_what.find("sleep 100") != std::string::npos);

      // with_timeout keeps the description with its own default token, and the error code with a tuple.
      auto [late, late_what] =
          co_await what_of(herd::with_timeout(herd::async_run(ex, herd::command("sleep", "100")), 50ms));
      CHECK(late == herd::errc::timed_out);
      CHECK(late_what.find("sleep 100") != std::string::npos);

      herd::run_options check;
      check.check = true;
      std::vector<herd::command> stages{test_child("exit", "0"), test_child("exit", "4")};
      auto [failed, failed_what] = co_await what_of(herd::async_run_pipeline(ex, stages, check));
      CHECK(failed == herd::errc::child_exited);
      CHECK(failed_what.find("code 4") != std::string::npos);

      // The failing objects leave nothing behind: a later run works.
      CHECK((co_await herd::async_run(ex, test_child("exit", "0"))).success());
    });
  }

  TEST_CASE("stdin bytes are fed while 100 MiB of stdout and stderr are drained, without deadlock") {
    leak_check guard;
    herd_test::run(
        [](asio::any_io_executor ex) -> asio::awaitable<void> {
          const std::size_t size = 100u << 20;
          std::string input = pattern(size);
          auto echoed = co_await herd::async_run(ex, test_child("echo").std_in(herd::stdio::bytes(input)));
          CHECK(echoed.success());
          CHECK(echoed.std_out.size() == size);
          CHECK(echoed.std_out == input);

          auto both = co_await herd::async_run(ex, test_child("write-both", std::to_string(size)));
          CHECK(both.success());
          CHECK(both.std_out.size() == size);
          CHECK(both.std_err.size() == size);
        },
        300s);
  }

  TEST_CASE("a missing program completes with program_not_found and a description naming it") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [ec, result] = co_await herd::async_run(ex, herd::command("herd-no-such-program"), tuple);
      CHECK(ec == herd::errc::program_not_found);
      CHECK(result.status.reason() == herd::exit_reason::spawn_failed);
      CHECK(result.description.find("herd-no-such-program") != std::string::npos);
    });
  }

  TEST_CASE("a timeout stops sleep 100 within the grace period and reports timed_out") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::run_options options;
      options.timeout = 100ms;
      const auto start = std::chrono::steady_clock::now();
      auto [ec, result] = co_await herd::async_run(ex, herd::command("sleep", "100"), options, tuple);
      const auto took = std::chrono::steady_clock::now() - start;
      CHECK(ec == herd::errc::timed_out);
      CHECK(result.status.signal() == SIGTERM);
      CHECK(result.status.reason() == herd::exit_reason::timed_out);
      CHECK(took >= 100ms);
      CHECK(took < 5s);  // the default grace: sleep dies of SIGTERM at once
    });
  }

  TEST_CASE("a timed-out program that ignores SIGTERM is killed after the grace period") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::run_options options;
      options.timeout = 100ms;
      auto cmd = test_child("ignore-sigterm").stop({true, SIGTERM, std::chrono::milliseconds(300)});
      const auto start = std::chrono::steady_clock::now();
      auto [ec, result] = co_await herd::async_run(ex, cmd, options, tuple);
      const auto took = std::chrono::steady_clock::now() - start;
      CHECK(ec == herd::errc::timed_out);
      CHECK(result.status.signal() == SIGKILL);
      CHECK(result.std_out == "ready\n");  // what it wrote before is kept
      CHECK(took >= 350ms);
      CHECK(took < 10s);
    });
  }

  TEST_CASE("cancelling async_run with a timer stops the program and delivers the final status") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(ex, 50ms);
      auto outcome = co_await (herd::async_run(ex, herd::command("sleep", "100"), asio::as_tuple(asio::use_awaitable)) ||
                               timer.async_wait(asio::use_awaitable));
      CHECK(outcome.index() == 1);

      auto [ec, result] = co_await herd::with_timeout(herd::async_run(ex, herd::command("sleep", "100")), 50ms, tuple);
      CHECK(ec == herd::errc::timed_out);  // with_timeout turns the cancellation into timed_out
      CHECK(result.status.signal() == SIGTERM);
      CHECK(result.status.reason() == herd::exit_reason::cancelled);
    });
  }

  TEST_CASE("a cancelled run completes with operation_aborted and the final status") {
    leak_check guard;
    asio::io_context io;
    asio::cancellation_signal cancel;
    herd::error_code ec;
    herd::run_result result;
    herd::async_run(io.get_executor(), herd::command("sleep", "100"),
                    asio::bind_cancellation_slot(cancel.slot(), [&](herd::error_code e, herd::run_result r) {
                      ec = e;
                      result = std::move(r);
                    }));
    asio::steady_timer timer(io, 50ms);
    timer.async_wait([&](herd::error_code) { cancel.emit(asio::cancellation_type::terminal); });
    io.run();
    CHECK(ec == asio::error::operation_aborted);
    CHECK(result.status.signal() == SIGTERM);
    CHECK(result.status.reason() == herd::exit_reason::cancelled);
  }

  TEST_CASE("a coroutine cancelled while it awaits async_run with the default token stops the program") {
    leak_check guard;
    asio::io_context io;
    asio::cancellation_signal cancel;
    std::string what;
    bool aborted = false;
    const auto start = std::chrono::steady_clock::now();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          try {
            co_await herd::async_run(io.get_executor(), herd::command("sleep", "100"));
          } catch (const boost::system::system_error& e) {
            aborted = e.code() == asio::error::operation_aborted;
            what = e.what();
          }
        },
        asio::bind_cancellation_slot(cancel.slot(), asio::detached));
    asio::steady_timer timer(io, 50ms);
    timer.async_wait([&](herd::error_code) { cancel.emit(asio::cancellation_type::terminal); });
    io.run();
    CHECK(aborted);
    CHECK(what.find("sleep 100") != std::string::npos);  // the description names what was stopped
    CHECK(std::chrono::steady_clock::now() - start < 10s);
  }

  TEST_CASE("stdio can be files, /dev/null, inherited, or stderr merged into stdout") {
    leak_check guard;
    const auto dir = std::filesystem::temp_directory_path() / ("herd-run-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      {
        std::ofstream(dir / "in.txt") << "from a file";
      }
      auto to_file = co_await herd::async_run(
          ex, test_child("echo").std_in(herd::stdio::file(dir / "in.txt")).std_out(herd::stdio::file(dir / "out.txt")));
      CHECK(to_file.success());
      CHECK(to_file.std_out.empty());
      std::ifstream written(dir / "out.txt");
      CHECK(std::string(std::istreambuf_iterator<char>(written), {}) == "from a file");

      co_await herd::async_run(ex, test_child("lines", "1").std_out(herd::stdio::file(dir / "out.txt", true)));
      std::ifstream appended(dir / "out.txt");
      CHECK(std::string(std::istreambuf_iterator<char>(appended), {}) == "from a fileline 1\n");

      auto merged = co_await herd::async_run(ex, test_child("write-err", "5").std_err(herd::stdio::to_stdout()));
      CHECK(merged.std_out == "abcde");
      CHECK(merged.std_err.empty());

      auto nulled = co_await herd::async_run(ex, test_child("lines", "2").std_out(herd::stdio::null()));
      CHECK(nulled.success());
      CHECK(nulled.std_out.empty());

      auto no_input = co_await herd::async_run(ex, test_child("count-stdin"));
      CHECK(no_input.std_out == "0\n");
    });
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("a descendant that leaves the group holding stdout cannot hold the run forever") {
    leak_check guard;
    int grandchild = 0;
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto cmd = test_child("grandchild-setsid", "0").stop({true, SIGTERM, std::chrono::milliseconds(200)});
      const auto start = std::chrono::steady_clock::now();
      auto result = co_await herd::async_run(ex, cmd);
      CHECK(result.success());
      CHECK(std::chrono::steady_clock::now() - start < 5s);
      grandchild = std::stoi(result.std_out);
    });
    ::kill(grandchild, SIGKILL);
    CHECK(herd_test::wait_until_gone(grandchild));
  }

  TEST_CASE("a descendant outside the group that keeps writing cannot hold the run forever") {
    leak_check guard;
    int grandchild = 0;
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto cmd = test_child("grandchild-setsid-writer").stop({true, SIGTERM, std::chrono::milliseconds(200)});
      const auto start = std::chrono::steady_clock::now();
      auto [ec, result] = co_await herd::async_run(ex, cmd, herd::run_options{}, tuple);
      CHECK_FALSE(ec);
      CHECK(result.success());
      CHECK(std::chrono::steady_clock::now() - start < 10s);
      const auto digits = result.std_out.find_first_of("0123456789");
      REQUIRE(digits != std::string::npos);
      grandchild = std::stoi(result.std_out.substr(digits));
    });
    ::kill(grandchild, SIGKILL);
    CHECK(herd_test::wait_until_gone(grandchild));
  }

  TEST_CASE("callbacks work as completion tokens") {
    leak_check guard;
    asio::io_context io;
    bool called = false;
    herd::async_run(io.get_executor(), test_child("lines", "1"), [&](herd::error_code ec, herd::run_result r) {
      CHECK_FALSE(ec);
      CHECK(r.std_out == "line 1\n");
      called = true;
    });
    CHECK_FALSE(called);  // never completes inside the initiating call
    io.run();
    CHECK(called);
  }

  TEST_CASE("async_run works on an io_context run by several threads") {
    leak_check guard;
    asio::io_context io;
    std::atomic<int> done{0};
    for (int i = 0; i < 20; ++i)
      herd::async_run(io.get_executor(), test_child("write-both", "70000"), [&](herd::error_code ec, herd::run_result r) {
        CHECK_FALSE(ec);
        CHECK(r.std_out.size() == 70000);
        CHECK(r.std_err.size() == 70000);
        ++done;
      });
    std::thread helper([&] { io.run(); });
    io.run();
    helper.join();
    CHECK(done == 20);
  }

  TEST_CASE("async_run_all runs at most N programs at once and gives each outcome in input order") {
    leak_check guard;
    const auto dir = std::filesystem::temp_directory_path() / ("herd-run-all-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      // Each program marks itself running, counts who runs, then leaves.
      const std::string script = "touch " + dir.string() + "/$$; sleep 0.05; ls " + dir.string() +
                                 " | wc -l; sleep 0.05; rm " + dir.string() + "/$$";
      for (const std::size_t width : {std::size_t(1), std::size_t(3)}) {
        std::vector<herd::command> commands;
        for (int i = 0; i < 7; ++i) commands.push_back(herd::command("sh", "-c", script + "; echo " + std::to_string(i)));
        commands.insert(commands.begin() + 2, herd::command("herd-no-such-program"));
        commands.insert(commands.begin() + 4, herd::command("sh", "-c", "exit 3"));
        herd::run_all_options options;
        options.concurrency = width;
        const std::vector<herd::run_all_item> items = co_await herd::async_run_all(ex, commands, options);
        REQUIRE(items.size() == 9);
        CHECK(items[2].error == herd::errc::program_not_found);
        CHECK_FALSE(items[4].error);  // it ran; check is off
        CHECK(items[4].result.status.code() == 3);
        std::size_t most = 0;
        int expected = 0;
        for (std::size_t k = 0; k < items.size(); ++k) {
          if (k == 2 || k == 4) continue;
          CHECK_FALSE(items[k].error);
          std::istringstream out(items[k].result.std_out);
          std::size_t running = 0;
          int index = -1;
          out >> running >> index;
          CHECK(index == expected++);  // input order
          most = std::max(most, running);
        }
        CHECK(most == width);
      }
      // Cancelled: the running programs are stopped and none is started after.
      std::vector<herd::command> sleepers(6, herd::command("sleep", "10"));
      herd::run_all_options two;
      two.concurrency = 2;
      const auto start = std::chrono::steady_clock::now();
      try {
        co_await herd::with_timeout(herd::async_run_all(ex, sleepers, two), 200ms);
        FAIL("sleep 10 ended early");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::timed_out);
      }
      CHECK(std::chrono::steady_clock::now() - start < 5s);
    });
    std::filesystem::remove_all(dir);
  }
}
