// examples/http_offload.cpp as a real service on a loopback port: the loop never blocks while the
// pool works, a crashing route fails alone, deadlines, and SIGTERM with requests in flight.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/child.hpp>
#include <herd/command.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <csignal>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

#ifdef HERD_HTTP_OFFLOAD
namespace {

struct answer {
  int status = 0;
  std::string body;
  double ms = 0;
};

// One request on a connection of its own.
asio::awaitable<answer> ask(unsigned short port, std::string target, std::string post = {}) {
  const auto start = std::chrono::steady_clock::now();
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), asio::use_awaitable);
  http::request<http::string_body> req{post.empty() ? http::verb::get : http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  req.body() = std::move(post);
  req.prepare_payload();
  co_await http::async_write(socket, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(socket, buffer, res, asio::use_awaitable);
  answer a;
  a.status = static_cast<int>(res.result_int());
  a.body = res.body();
  a.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  co_return a;
}

// The service, started on a free port.
struct server {
  herd::child process;
  unsigned short port = 0;
};

asio::awaitable<std::unique_ptr<server>> start_server(asio::any_io_executor ex, std::vector<std::string> args) {
  herd::command cmd(HERD_HTTP_OFFLOAD);
  cmd.args(std::move(args)).std_out(herd::stdio::pipe());
  auto s = std::make_unique<server>(server{herd::child(ex, cmd), 0});
  const std::string line = co_await s->process.std_out().async_read_line();
  REQUIRE(line.rfind("listening on 127.0.0.1:", 0) == 0);
  s->port = static_cast<unsigned short>(std::stoi(line.substr(line.rfind(':') + 1)));
  co_return s;
}

// Requests sent in the background: how many came back right, how many came back at all. Shared:
// the requests may outlive the coroutine that sent them.
struct tally {
  int ok = 0;
  int done = 0;
};

void send(asio::any_io_executor ex, std::shared_ptr<tally> t, unsigned short port, std::string target,
          std::string expected) {
  asio::co_spawn(ex, [=]() -> asio::awaitable<void> {
    try {
      const answer a = co_await ask(port, target);
      if (a.status == 200 && a.body == expected) ++t->ok;
    } catch (...) {
    }
    ++t->done;
  }, asio::detached);
}

asio::awaitable<void> until_done(asio::any_io_executor ex, const tally& t, int count) {
  asio::steady_timer wait(ex);
  for (int i = 0; i < 3000 && t.done < count; ++i) {
    wait.expires_after(10ms);
    co_await wait.async_wait(asio::deferred);
  }
}

std::vector<int> worker_pids(const std::string& stats) {
  std::istringstream in(stats.substr(stats.find("pids") + 4));
  std::vector<int> pids;
  for (int pid; in >> pid;) pids.push_back(pid);
  return pids;
}

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer slows every memory access several times and CTest runs two tests at once on
// two cores: a scheduling delay, not a blocked loop, can pass 50 ms there (73 ms seen once). A
// loop blocked by the 32 requests would hold /health for seconds.
constexpr double health_bound_ms = 200;
#else
constexpr double health_bound_ms = 50;
#endif

// 32 slow /primes at once while /health is asked every 5 ms: every /health answer comes fast.
asio::awaitable<void> health_under_load(asio::any_io_executor ex, std::vector<std::string> args) {
  auto s = co_await start_server(ex, std::move(args));
  auto primes = std::make_shared<tally>();
  for (int i = 0; i < 32; ++i) send(ex, primes, s->port, "/primes?below=60000", "6057\n");
  double worst = 0;
  int health = 0;
  asio::steady_timer tick(ex);
  while (primes->done < 32) {
    const answer a = co_await ask(s->port, "/health");
    CHECK(a.status == 200);
    worst = std::max(worst, a.ms);
    ++health;
    tick.expires_after(5ms);
    co_await tick.async_wait(asio::deferred);
  }
  CHECK(primes->ok == 32);
  CHECK(health > 3);
  CHECK_MESSAGE(worst < health_bound_ms, "the slowest /health took ", worst, " ms");
  s->process.signal(SIGTERM);
  const herd::exit_status status = co_await s->process.async_wait();
  CHECK(status.code() == 0);
}

// Four slow requests in flight, then SIGTERM: all four answered, exit 0, the workers gone.
asio::awaitable<void> drain_on_sigterm(asio::any_io_executor ex, std::vector<std::string> args) {
  auto s = co_await start_server(ex, std::move(args));
  const answer stats = co_await ask(s->port, "/stats");
  const std::vector<int> workers = worker_pids(stats.body);
  auto primes = std::make_shared<tally>();
  for (int i = 0; i < 4; ++i) send(ex, primes, s->port, "/primes?below=150000", "13848\n");
  asio::steady_timer settle(ex, 50ms);  // the four are in the pool
  co_await settle.async_wait(asio::deferred);
  s->process.signal(SIGTERM);
  const herd::exit_status status = co_await s->process.async_wait();
  CHECK(status.code() == 0);
  co_await until_done(ex, *primes, 4);
  CHECK(primes->ok == 4);  // answered before the service ended
  for (int pid : workers) CHECK(herd_test::wait_until_gone(pid));
}

}  // namespace

TEST_SUITE("http offload") {
  TEST_CASE("the loop answers /health within 50 ms while 32 slow requests run in the pool") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> args{"--workers", "1"};
      co_await health_under_load(ex, args);
    }, 120s);
  }

  TEST_CASE("the same with io.run() on four threads") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> args{"--workers", "1", "--threads", "4"};
      co_await health_under_load(ex, args);
    }, 120s);
  }

  TEST_CASE("/crash fails alone with a 500 that says why, and the pool is back to its size") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> args{"--workers", "2"};
      auto s = co_await start_server(ex, args);
      auto primes = std::make_shared<tally>();
      for (int i = 0; i < 8; ++i) send(ex, primes, s->port, "/primes?below=30000", "3245\n");
      const answer crashed = co_await ask(s->port, "/crash");
      CHECK(crashed.status == 500);
      CHECK(crashed.body.find("died") != std::string::npos);
      CHECK(crashed.body.find("SIGABRT") != std::string::npos);
      co_await until_done(ex, *primes, 8);
      CHECK(primes->ok == 8);
      const answer hash = co_await ask(s->port, "/hash", "hello world");
      CHECK(hash.body == "e1d7a701437f78f9\n");
      const answer words = co_await ask(s->port, "/run/wc", "one two three");
      CHECK(words.body.find('3') != std::string::npos);
      const answer stats = co_await ask(s->port, "/stats");
      CHECK(stats.body.rfind("workers 2 restarts 1", 0) == 0);
      CHECK(worker_pids(stats.body).size() == 2);
      s->process.signal(SIGTERM);
      co_await s->process.async_wait();
    }, 120s);
  }

  TEST_CASE("a request past its deadline gets 504, its worker is replaced and the service goes on") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> args{"--workers", "1", "--deadline-ms", "300"};
      auto s = co_await start_server(ex, args);
      const answer before = co_await ask(s->port, "/stats");  // its one worker
      const answer late = co_await ask(s->port, "/primes?below=2000000000");
      CHECK(late.status == 504);
      CHECK(late.body.find("timed out") != std::string::npos);
      const answer next = co_await ask(s->port, "/primes?below=100");
      CHECK(next.status == 200);
      CHECK(next.body == "25\n");
      const answer after = co_await ask(s->port, "/stats");
      CHECK(worker_pids(after.body).size() == 1);
      CHECK(worker_pids(after.body) != worker_pids(before.body));  // the spinning one was replaced
      s->process.signal(SIGTERM);
      co_await s->process.async_wait();
    }, 120s);
  }

  TEST_CASE("SIGTERM drains the requests in flight with io.run() on four threads too") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> args{"--workers", "2", "--threads", "4"};
      co_await drain_on_sigterm(ex, args);
    }, 120s);
  }

  TEST_CASE("SIGTERM lets requests in flight finish and exits 0, and a second SIGTERM forces 143") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> drained{"--workers", "2"};
      co_await drain_on_sigterm(ex, drained);
      {
        const std::vector<std::string> args{"--workers", "1"};
        auto s = co_await start_server(ex, args);
        const answer stats = co_await ask(s->port, "/stats");
        const std::vector<int> workers = worker_pids(stats.body);
        auto forever = std::make_shared<tally>();
        send(ex, forever, s->port, "/primes?below=2000000000", "");  // cut when the service is forced down
        asio::steady_timer settle(ex, 100ms);
        co_await settle.async_wait(asio::deferred);
        s->process.signal(SIGTERM);
        settle.expires_after(100ms);
        co_await settle.async_wait(asio::deferred);
        s->process.signal(SIGTERM);
        const herd::exit_status status = co_await s->process.async_wait();
        CHECK(status.code() == 128 + SIGTERM);
        for (int pid : workers) CHECK(herd_test::wait_until_gone(pid));
        co_await until_done(ex, *forever, 1);
        CHECK(forever->ok == 0);
      }
    }, 120s);
  }
}
#endif  // HERD_HTTP_OFFLOAD
