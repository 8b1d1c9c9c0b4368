// Input that cannot be carried out as given is refused with an error naming the value, never
// silently changed; what was refused leaves everything usable.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/herd.hpp>

#include <boost/asio/as_tuple.hpp>

#include <cstdint>
#include <string>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using boost::system::system_error;
using herd_test::leak_check;
using namespace std::string_literals;

namespace {

template <typename F>
void refused(F&& call, const std::string& mentions) {
  try {
    call();
    FAIL("accepted: " << mentions);
  } catch (const system_error& e) {
    CHECK(e.code() == herd::errc::invalid_argument);
    CHECK_MESSAGE(std::string(e.what()).find(mentions) != std::string::npos, std::string(e.what()));
  }
}

}  // namespace

TEST_SUITE("bad_input") {
  TEST_CASE("environment names with '=' or NUL, empty names and arguments with NUL are refused by name") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      refused([&] { herd::child c(ex, herd::command("true").env("A=B", "x")); }, "\"A=B\" contains '='");
      refused([&] { herd::child c(ex, herd::command("true").env("", "x")); }, "name is empty");
      refused([&] { herd::child c(ex, herd::command("true").env("A\0B"s, "x")); }, "\"A\\0B\" contains a NUL byte");
      refused([&] { herd::child c(ex, herd::command("true").env("A", "x\0y"s)); }, "the value of A");
      refused([&] { herd::child c(ex, herd::command("echo", "one", "tw\0o"s)); }, "argument 2 \"tw\\0o\"");
      // Awaited, the error and the description say the same.
      auto [ec, result] = co_await herd::async_run(ex, herd::command("echo", "a\0b"s), asio::as_tuple(asio::deferred));
      CHECK(ec == herd::errc::invalid_argument);
      CHECK(result.description.find("argument 1") != std::string::npos);
      // Function children: process_options.env.
      herd::process_options options;
      options.env.emplace_back("X=Y", "1");
      refused([&] { herd::start(ex, options, [] {}); }, "\"X=Y\" contains '='");
      // Everything still works afterwards.
      auto ok = co_await herd::async_run(ex, herd::command("echo", "fine"));
      CHECK(ok.std_out == "fine\n");
      auto p = herd::start(ex, [] { return 1; });
      CHECK(co_await p.async_result() == 1);
    });
  }

  TEST_CASE("a barrier or semaphore count that does not fit 32 bits is refused, not narrowed") {
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::size_t too_many = (std::size_t(1) << 32) + 2;
      refused([&] { herd::barrier b(ex, too_many); }, "4294967298");
      refused([&] { herd::barrier b(ex, 0); }, "at least one party");
      herd::barrier fine(ex, 2);
      CHECK(fine.parties() == 2);
      co_return;
    });
  }
}
