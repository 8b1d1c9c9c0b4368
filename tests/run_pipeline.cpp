#include <herd/run.hpp>

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/error.hpp>

#include <boost/asio/as_tuple.hpp>

#include <csignal>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

template <typename... Args>
herd::command test_child(Args&&... args) {
  return herd::command(HERD_TEST_CHILD, std::forward<Args>(args)...);
}
constexpr auto tuple = asio::as_tuple(asio::deferred);

}  // namespace

TEST_SUITE("pipeline") {
  TEST_CASE("stages are connected stdout to stdin and every status is returned") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto result = co_await herd::async_run_pipeline(
          ex, test_child("write-out", "3000000") | test_child("echo") | test_child("count-stdin"));
      REQUIRE(result.statuses.size() == 3);
      for (const auto& status : result.statuses) CHECK(status.success());
      CHECK(result.success());
      CHECK(result.std_out == "3000000\n");
      CHECK(result.description.find(" | ") != std::string::npos);
    });
  }

  TEST_CASE("a failing middle stage fails the pipeline like set -o pipefail") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::vector<herd::command> stages{test_child("write-out", "100000000"), test_child("exit", "3"),
                                        test_child("count-stdin")};  // a vector built outside co_await works too
      auto result = co_await herd::async_run_pipeline(ex, stages);
      REQUIRE(result.statuses.size() == 3);
      CHECK(result.statuses[0].signal() == SIGPIPE);  // its reader went away
      CHECK(result.statuses[1].code() == 3);
      CHECK(result.statuses[2].success());
      CHECK(result.std_out == "0\n");
      CHECK(result.status().code() == 3);  // the rightmost failure
      CHECK_FALSE(result.success());

      herd::run_options check;
      check.check = true;
      auto [ec, checked] = co_await herd::async_run_pipeline(ex, stages, check, tuple);
      CHECK(ec == herd::errc::child_exited);
    });
  }

  TEST_CASE("a stage that cannot start stops the stages already running") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [ec, result] = co_await herd::async_run_pipeline(
          ex, test_child("sleep", "100000") | herd::command("herd-no-such-program") | test_child("count-stdin"),
          herd::run_options{}, tuple);
      CHECK(ec == herd::errc::program_not_found);
      CHECK(result.description.find("herd-no-such-program") != std::string::npos);
      REQUIRE(result.statuses.size() == 3);
      CHECK(result.statuses[0].signal() == SIGTERM);
      CHECK(result.statuses[1].reason() == herd::exit_reason::spawn_failed);
      CHECK(result.statuses[2].reason() == herd::exit_reason::spawn_failed);
    });
  }

  TEST_CASE("a pipeline timeout stops every stage") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::run_options options;
      options.timeout = 100ms;
      auto [ec, result] = co_await herd::async_run_pipeline(
          ex, test_child("sleep", "100000") | test_child("echo") | test_child("sleep", "100000"), options, tuple);
      CHECK(ec == herd::errc::timed_out);
      for (const auto& status : result.statuses) CHECK(status.reason() == herd::exit_reason::timed_out);
    });
  }

  TEST_CASE("each stage's stderr is captured on its own") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto result = co_await herd::async_run_pipeline(ex, test_child("write-err", "3") | test_child("count-stdin"));
      REQUIRE(result.std_err.size() == 2);
      CHECK(result.std_err[0] == "abc");
      CHECK(result.std_err[1].empty());
      CHECK(result.std_out == "0\n");
    });
  }

  TEST_CASE("a stage whose stdout goes elsewhere gives the next stage an empty stdin") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto result = co_await herd::async_run_pipeline(
          ex, test_child("lines", "3").std_out(herd::stdio::null()) | test_child("count-stdin"));
      CHECK(result.success());
      CHECK(result.std_out == "0\n");
    });
  }

  TEST_CASE("an empty pipeline is refused") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [ec, result] = co_await herd::async_run_pipeline(ex, std::vector<herd::command>(), herd::run_options{}, tuple);
      CHECK(ec == herd::errc::invalid_argument);
    });
  }
}
