// Every public object after a move (and a process after detach()): destruction and close() are
// harmless, every other call reports an errc (not_running, or closed for channels and streams),
// and the object it moved into works.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/herd.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <string>
#include <utility>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using boost::system::error_code;
using boost::system::system_error;
using herd_test::leak_check;

namespace {

constexpr auto tuple = asio::as_tuple(asio::deferred);

struct wide {  // not lock-free: goes through the attached lock
  long a, b, c, d;
};

template <typename F>
void reports(F&& call, herd::errc expected) {
  try {
    call();
    FAIL("no error was reported");
  } catch (const system_error& e) {
    CHECK(e.code() == expected);
  }
}

}  // namespace

TEST_SUITE("moved_from") {
  TEST_CASE("moved-from and detached processes report not_running") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::start(ex, [] { return 7; });
      auto q = std::move(p);
      CHECK_FALSE(p.valid());
      auto [ec1, s1] = co_await p.async_join(tuple);
      CHECK(ec1 == herd::errc::not_running);
      auto [ec2, s2] = co_await p.async_stop(tuple);
      CHECK(ec2 == herd::errc::not_running);
      try {
        co_await p.async_result();
        FAIL("async_result on a moved-from process returned");
      } catch (const system_error& e) {
        CHECK(e.code() == herd::errc::not_running);
      }
      reports([&] { p.join(); }, herd::errc::not_running);
      reports([&] { p.result(); }, herd::errc::not_running);
      reports([&] { p.terminate(); }, herd::errc::not_running);
      reports([&] { p.kill(); }, herd::errc::not_running);
      reports([&] { p.signal(SIGTERM); }, herd::errc::not_running);
      CHECK_FALSE(p.is_alive());
      CHECK(p.pid() == -1);
      CHECK_FALSE(p.exit_code());
      p.detach();  // harmless
      CHECK(co_await q.async_result() == 7);

      auto d = herd::start(ex, [] { ::usleep(20'000); });
      d.detach();
      auto [ec3, s3] = co_await d.async_join(tuple);
      CHECK(ec3 == herd::errc::not_running);
      reports([&] { d.terminate(); }, herd::errc::not_running);
      d = herd::start(ex, [] {});  // assignable again
      CHECK((co_await d.async_join()).success());
      // The detached child is reaped once it has ended (active_children() reaps).
      asio::steady_timer timer(ex);
      for (int i = 0; i < 1000 && !herd::active_children().empty(); ++i) {
        timer.expires_after(5ms);
        co_await timer.async_wait(asio::deferred);
      }
    });
  }

  TEST_CASE("a moved-from program child and its moved-from streams report errors") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::command cmd(HERD_TEST_CHILD, "echo");
      cmd.std_in(herd::stdio::pipe()).std_out(herd::stdio::pipe());
      herd::child c(ex, cmd);
      herd::child moved = std::move(c);
      CHECK_FALSE(c.valid());
      auto [ec1, s1] = co_await c.async_wait(tuple);
      CHECK(ec1 == herd::errc::not_running);
      reports([&] { c.terminate(); }, herd::errc::not_running);
      reports([&] { c.kill(); }, herd::errc::not_running);
      reports([&] { c.std_out(); }, herd::errc::not_running);
      c.close_stdin();  // harmless

      herd::pipe_writer in = std::move(moved.std_in());
      herd::pipe_reader out = std::move(moved.std_out());
      // The moved-from ends inside the child object.
      auto [ec2, n2] = co_await moved.std_in().async_write("x", tuple);
      CHECK(ec2 == herd::errc::closed);
      auto [ec3, line] = co_await moved.std_out().async_read_line(tuple);
      CHECK(ec3 == herd::errc::closed);
      std::array<char, 4> buffer{};
      auto [ec4, n4] = co_await moved.std_out().async_read_some(asio::buffer(buffer), tuple);
      CHECK(ec4 == herd::errc::closed);
      auto [ec5, all] = co_await moved.std_out().async_read_all(tuple);
      CHECK(ec5 == herd::errc::closed);
      moved.std_out().close();
      moved.std_out().cancel();
      CHECK_FALSE(moved.std_out().is_open());
      // The ends moved into still work.
      co_await in.async_write("hello\n");
      in.close();
      CHECK(co_await out.async_read_line() == "hello");
      CHECK((co_await moved.async_wait()).success());
    });
  }

  TEST_CASE("moved-from queues, joinable queues and pipe ends report closed") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::queue<int> q(ex);
      herd::queue<int> q2 = std::move(q);
      auto [ec1] = co_await q.async_put(1, tuple);
      CHECK(ec1 == herd::errc::closed);
      auto [ec2, v2] = co_await q.async_get(tuple);
      CHECK(ec2 == herd::errc::closed);
      reports([&] { q.put(1); }, herd::errc::closed);
      reports([&] { q.get(); }, herd::errc::closed);
      reports([&] { q.get(10ms); }, herd::errc::closed);
      reports([&] { q.put_many(std::array{1, 2}); }, herd::errc::closed);
      reports([&] { q.flush(); }, herd::errc::closed);
      CHECK_FALSE(q.try_put(1));
      CHECK_FALSE(q.try_get());
      CHECK(q.closed());
      CHECK(q.qsize() == 0);
      CHECK(q.empty());
      q.close();  // harmless
      co_await q2.async_put(5);
      CHECK(co_await q2.async_get() == 5);

      herd::joinable_queue<int> j(ex);
      auto j2 = std::move(j);
      reports([&] { j.task_done(); }, herd::errc::closed);
      reports([&] { j.join(); }, herd::errc::closed);
      auto [ec3] = co_await j.async_join(tuple);
      CHECK(ec3 == herd::errc::closed);
      j.close();
      co_await j2.async_put(1);
      co_await j2.async_get();
      j2.task_done();
      co_await j2.async_join();

      auto [a, b] = herd::make_pipe<std::string>(ex);
      auto a2 = std::move(a);
      a.close();  // Python's child_conn.close() after passing the end on: harmless
      CHECK(a.closed());
      auto [ec4] = co_await a.async_send("x", tuple);
      CHECK(ec4 == herd::errc::closed);
      auto [ec5, v5] = co_await a.async_recv(tuple);
      CHECK(ec5 == herd::errc::closed);
      reports([&] { a.send("x"); }, herd::errc::closed);
      reports([&] { a.recv(); }, herd::errc::closed);
      CHECK_FALSE(a.try_recv());
      co_await a2.async_send("through");
      CHECK(co_await b.async_recv() == "through");
    });
  }

  TEST_CASE("moved-from locks, semaphores, events, conditions and barriers report not_running") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::lock l(ex);
      herd::lock l2 = std::move(l);
      reports([&] { l.acquire(); }, herd::errc::not_running);
      reports([&] { l.try_acquire(); }, herd::errc::not_running);
      reports([&] { l.acquire(10ms); }, herd::errc::not_running);
      reports([&] { l.release(); }, herd::errc::not_running);
      error_code ec;
      l.acquire(ec);
      CHECK(ec == herd::errc::not_running);
      auto [ec1] = co_await l.async_acquire(tuple);
      CHECK(ec1 == herd::errc::not_running);
      auto [ec2, g2] = co_await l.async_guard(tuple);
      CHECK(ec2 == herd::errc::not_running);
      CHECK_FALSE(g2.owns());
      reports([&] { herd::lock_guard g(l); }, herd::errc::not_running);
      CHECK_FALSE(l.locked());
      {
        herd::lock_guard g(l2);
        CHECK(l2.locked());
        herd::lock_guard g3 = std::move(g);
        CHECK_FALSE(g.owns());
        g.unlock();  // harmless
        CHECK(g3.owns());
      }
      CHECK_FALSE(l2.locked());

      herd::rlock r(ex);
      auto r2 = std::move(r);
      reports([&] { r.acquire(); }, herd::errc::not_running);
      CHECK(r.depth() == 0);
      herd::semaphore s(ex, 2);
      auto s2 = std::move(s);
      reports([&] { s.release(); }, herd::errc::not_running);
      CHECK(s.value() == 0);
      auto [ec3] = co_await s.async_acquire(tuple);
      CHECK(ec3 == herd::errc::not_running);
      co_await s2.async_acquire();
      herd::bounded_semaphore bs(ex, 1);
      auto bs2 = std::move(bs);
      reports([&] { bs.acquire(); }, herd::errc::not_running);

      herd::event e(ex);
      auto e2 = std::move(e);
      reports([&] { e.set(); }, herd::errc::not_running);
      reports([&] { e.clear(); }, herd::errc::not_running);
      reports([&] { e.wait(); }, herd::errc::not_running);
      CHECK_FALSE(e.is_set());
      auto [ec4] = co_await e.async_wait(tuple);
      CHECK(ec4 == herd::errc::not_running);
      e2.set();
      co_await e2.async_wait();

      herd::condition c(ex);
      auto c2 = std::move(c);
      reports([&] { c.notify(); }, herd::errc::not_running);
      reports([&] { c.notify_all(); }, herd::errc::not_running);
      reports([&] { c.wait(); }, herd::errc::not_running);
      auto [ec5] = co_await c.async_wait(tuple);
      CHECK(ec5 == herd::errc::not_running);

      herd::barrier b(ex, 1);
      auto b2 = std::move(b);
      reports([&] { b.wait(); }, herd::errc::not_running);
      reports([&] { b.reset(); }, herd::errc::not_running);
      reports([&] { b.abort(); }, herd::errc::not_running);
      auto [ec6, i6] = co_await b.async_wait(tuple);
      CHECK(ec6 == herd::errc::not_running);
      CHECK(b.parties() == 0);
      CHECK(b2.wait() == 0);
    });
  }

  TEST_CASE("moved-from shared values, arrays and strings report not_running") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::shared_value<int> v(ex, 3);
      auto v2 = std::move(v);
      reports([&] { v.load(); }, herd::errc::not_running);
      reports([&] { v.store(1); }, herd::errc::not_running);
      reports([&] { v.fetch_add(1); }, herd::errc::not_running);
      CHECK(v.get() == nullptr);
      CHECK(v2.load() == 3);

      herd::shared_value<wide> w(ex, wide{1, 2, 3, 4});
      auto w2 = std::move(w);
      reports([&] { w.load(); }, herd::errc::not_running);
      reports([&] { w.store(wide{}); }, herd::errc::not_running);
      CHECK(w2.load().d == 4);

      herd::shared_array<int> a(ex, {1, 2, 3});
      auto a2 = std::move(a);
      CHECK(a.size() == 0);
      CHECK(a.begin() == a.end());
      reports([&] { a.at(0); }, herd::errc::not_running);
      reports([&] { a.load(0); }, herd::errc::not_running);
      reports([&] { a.to_vector(); }, herd::errc::not_running);
      CHECK(a2.to_vector() == std::vector<int>{1, 2, 3});

      herd::shared_string<16> t(ex, "text");
      auto t2 = std::move(t);
      reports([&] { t.load(); }, herd::errc::not_running);
      reports([&] { t.store("x"); }, herd::errc::not_running);
      CHECK(t2.load() == "text");
      co_return;
    });
  }
}
