#include <herd/pipe.hpp>  // first: the header stands alone

#include "support/descriptors.hpp"
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/process.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

constexpr auto tuple = asio::as_tuple(asio::deferred);

}  // namespace

TEST_SUITE("pipe") {
  TEST_CASE("a duplex pipe carries a conversation both ways: parent awaits, child blocks") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [parent_end, child_end] = herd::make_pipe<std::string>(ex);
      auto child = herd::start(ex, [child_end = child_end]() mutable {
        for (;;) {
          std::string question = child_end.recv();
          if (question == "bye") return;
          child_end.send(question + "!");
        }
      });
      child_end.close();  // the parent's copy: only the child answers
      for (int i = 0; i < 1000; ++i) {
        co_await parent_end.async_send(std::to_string(i));
        CHECK(co_await parent_end.async_recv() == std::to_string(i) + "!");
      }
      co_await parent_end.async_send(std::string("bye"));
      CHECK((co_await child.async_join()).success());
      // The child is gone and held the only other copy: the pipe reports closed.
      auto [ec, nothing] = co_await parent_end.async_recv(tuple);
      CHECK(ec == herd::errc::closed);
    });
  }

  TEST_CASE("a one-way pipe: the first end only receives, the second only sends") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [reader, writer] = herd::make_pipe<int>(ex, false);
      auto child = herd::start(ex, [writer = writer]() mutable {
        for (int i = 0; i < 100; ++i) writer.send(i);
      });
      writer.close();
      int sum = 0;
      for (;;) {
        auto [ec, v] = co_await reader.async_recv(tuple);
        if (ec) {
          CHECK(ec == herd::errc::closed);
          break;
        }
        sum += v;
      }
      CHECK(sum == 99 * 100 / 2);
      co_await child.async_join();
      // Wrong-direction use is a clear error, and the end stays usable for its own direction.
      auto [send_ec] = co_await reader.async_send(1, tuple);
      CHECK(send_ec == herd::errc::closed);
      CHECK_THROWS_WITH_AS(reader.send(1), doctest::Contains("herd: send: closed"), boost::system::system_error);
    });
  }

  TEST_CASE("recv after the peer closed: what was sent first is still delivered, then closed") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [a, b] = herd::make_pipe<int>(ex);
      auto child = herd::start(ex, [b = b]() mutable {
        b.send(1);
        b.send(2);
        b.send(3);
        b.close();
      });
      b.close();
      co_await child.async_join();
      CHECK(a.recv() == 1);
      CHECK(co_await a.async_recv() == 2);
      CHECK(a.try_recv() == std::optional<int>(3));
      CHECK_THROWS_WITH_AS(a.recv(), doctest::Contains("closed"), boost::system::system_error);
      herd::error_code ec;
      a.recv(ec);
      CHECK(ec == herd::errc::closed);
    });
  }

  TEST_CASE("a child SIGKILLed mid-conversation: the parent's pending recv completes with closed") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [a, b] = herd::make_pipe<std::string>(ex);
      auto child = herd::start(ex, [b = b]() mutable {
        b.send("ready");
        for (;;) ::pause();  // never answers again
      });
      b.close();
      CHECK(co_await a.async_recv() == "ready");
      asio::steady_timer timer(ex, 50ms);
      timer.async_wait([&child](boost::system::error_code) { child.kill(); });
      auto [ec, v] = co_await a.async_recv(tuple);
      CHECK(ec == herd::errc::closed);
      CHECK((co_await child.async_join()).signal() == SIGKILL);
      // Sending to the dead peer is closed too, never SIGPIPE.
      auto [send_ec] = co_await a.async_send(std::string("anyone?"), tuple);
      CHECK(send_ec == herd::errc::closed);
    });
  }

  TEST_CASE("large values travel both ways through a pipe") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [a, b] = herd::make_pipe<std::vector<std::uint32_t>>(ex);
      auto child = herd::start(ex, [b = b]() mutable {
        for (int round = 0; round < 3; ++round) {
          auto v = b.recv();
          for (auto& x : v) x += 1;
          b.send(v);
        }
      });
      b.close();
      for (std::size_t size : {std::size_t{100}, std::size_t{1} << 20, std::size_t{5} << 20}) {  // words
        std::vector<std::uint32_t> v(size);
        for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<std::uint32_t>(i);
        co_await a.async_send(v);
        auto back = co_await a.async_recv();
        REQUIRE(back.size() == size);
        CHECK(back.front() == 1);
        CHECK(back.back() == static_cast<std::uint32_t>(size));
      }
      CHECK((co_await child.async_join()).success());
    });
  }

  TEST_CASE("timeouts, non-blocking receives and cancellation leave the pipe usable") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [a, b] = herd::make_pipe<int>(ex);
      CHECK(a.try_recv() == std::nullopt);
      const auto start = std::chrono::steady_clock::now();
      CHECK_THROWS_WITH_AS(a.recv(30ms), doctest::Contains("timed out"), boost::system::system_error);
      CHECK(std::chrono::steady_clock::now() - start >= 30ms);
      auto [ec, v] = co_await herd::with_timeout(a.async_recv(), 20ms, tuple);
      CHECK(ec == herd::errc::timed_out);
      using namespace asio::experimental::awaitable_operators;
      asio::steady_timer timer(ex, 20ms);
      auto winner = co_await (a.async_recv(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
      CHECK(winner.index() == 1);
      b.send(7);
      CHECK(co_await a.async_recv() == 7);  // nothing was taken by the cancelled receives
    });
  }

  TEST_CASE("use after close is a clear error, and the other end stays usable") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto [a, b] = herd::make_pipe<int>(ex);
      a.send(1);
      a.close();
      CHECK(a.closed());
      CHECK_FALSE(b.closed());
      CHECK_THROWS_WITH_AS(a.send(2), doctest::Contains("herd: send: closed"), boost::system::system_error);
      auto [ec, v] = co_await a.async_recv(tuple);
      CHECK(ec == herd::errc::closed);
      CHECK(b.recv() == 1);  // sent before the close
      CHECK_THROWS_WITH_AS(b.recv(), doctest::Contains("closed"), boost::system::system_error);
      a.close();  // twice is harmless
    });
  }

  TEST_CASE("bad bytes injected into a pipe are bad_message, and the pipe goes on") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const int made_from = herd_test::lowest_free_fd();
      auto [a, b] = herd::make_pipe<std::string>(ex);
      const int a_socket = herd_test::first_seqpacket_socket(made_from);
      REQUIRE(a_socket >= 0);
      const char garbage[] = "\xff\xff\xff\xff no record here";
      REQUIRE(::send(a_socket, garbage, sizeof garbage, MSG_NOSIGNAL) > 0);
      co_await a.async_send(std::string("fine"));
      auto [bad, v] = co_await b.async_recv(tuple);
      CHECK(bad == herd::errc::bad_message);
      CHECK(co_await b.async_recv() == "fine");
      REQUIRE(::send(a_socket, garbage, sizeof garbage, MSG_NOSIGNAL) > 0);
      CHECK_THROWS_WITH_AS(b.recv(), doctest::Contains("cannot be decoded"), boost::system::system_error);
      a.send("still fine");
      CHECK(b.recv() == "still fine");
    });
  }

  TEST_CASE("pipes leak no descriptors") {
    leak_check guard;
    asio::io_context io;
    for (int i = 0; i < 50; ++i) {
      auto [a, b] = herd::make_pipe<std::string>(io.get_executor(), i % 2 == 0);
      b.send(std::string(100000, 'x'));
      CHECK(a.recv().size() == 100000);
    }
  }
}
