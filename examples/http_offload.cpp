// An Asio HTTP service (Boost.Beast) that offloads CPU-heavy and crash-prone work to herd, on
// the same io_context, and stops in order on SIGINT/SIGTERM (herd::shutdown).
//
//   http_offload [--port P] [--threads N] [--workers W] [--max-in-flight M] [--deadline-ms D] [--inline]
//
// Routes: GET /health (answered on the loop), GET /primes?below=N (counted in a pool worker),
// POST /hash (the body hashed in a worker), POST /run/wc (the body fed to `wc -w`), GET /crash
// (its worker dies on purpose: 500, the service goes on), GET /stats (the pool's workers).
// At most M requests are in the pool at once (503 beyond), each within D ms (504 after: the task
// is stopped and its worker replaced); bodies over 1 MiB get 413. --inline counts primes on the
// loop instead: what a server without herd does (for the benchmark's contrast).
// It prints "listening on 127.0.0.1:PORT" once it accepts (P = 0: a free port).
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// [snippet:work]
// In a worker: how many primes are below n (trial division: deliberately CPU-bound).
long count_primes(long n) {
  long count = 0;
  for (long k = 2; k < n; ++k) {
    bool prime = true;
    for (long d = 2; d * d <= k; ++d)
      if (k % d == 0) {
        prime = false;
        break;
      }
    count += prime ? 1 : 0;
  }
  return count;
}

// In a worker: FNV-1a of the body, as hex.
std::string hash_text(std::string body) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

// In a worker: dies, as a bug would.
int crash(int) {
  std::abort();
}
// [/snippet]

struct settings {
  unsigned short port = 0;
  unsigned threads = 1;
  std::size_t workers = 0;
  std::size_t max_in_flight = 64;
  std::chrono::milliseconds deadline{2000};
  bool inline_work = false;
};

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

response reply(const request& req, http::status status, std::string body) {
  response res{status, req.version()};
  res.set(http::field::content_type, "text/plain");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::optional<long> query_number(std::string_view target, std::string_view name) {
  const auto at = target.find(std::string(name) + "=");
  if (at == std::string_view::npos) return std::nullopt;
  const std::string_view digits = target.substr(at + name.size() + 1);
  long value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || value < 0) return std::nullopt;
  return value;
}

class service {
 public:
  service(asio::io_context& io, const settings& s)
      : io_(io),
        settings_(s),
        pool_(io.get_executor(), {.processes = s.workers, .stop = herd::stop_policy{false, SIGTERM, 500ms}}),
        acceptor_(asio::make_strand(io)) {}

  herd::pool& pool() { return pool_; }

  void listen() {
    tcp::endpoint at(asio::ip::make_address("127.0.0.1"), settings_.port);
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
    std::printf("listening on 127.0.0.1:%u\n", acceptor_.local_endpoint().port());
    std::fflush(stdout);
    asio::co_spawn(acceptor_.get_executor(), accept(), asio::detached);
  }

  // [snippet:stop]
  // The orderly stop's step: no new connection, idle ones closed, busy ones finish their
  // request; it ends when no request is left.
  asio::awaitable<void> stop() {
    stopping_ = true;
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    close_idle_connections();
    asio::steady_timer poll(io_);
    while (active_requests_ > 0 || open_connections_ > 0) {
      poll.expires_after(10ms);
      co_await poll.async_wait(asio::use_awaitable);
      close_idle_connections();
    }
  }
  // [/snippet]

 private:
  struct connection {
    beast::tcp_stream stream;
    bool busy = false;
    explicit connection(tcp::socket s) : stream(std::move(s)) {}
  };

  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;  // closed: the service stops
      auto c = std::make_shared<connection>(std::move(socket));
      {
        std::lock_guard lock(mutex_);
        connections_.insert(c);
      }
      ++open_connections_;
      asio::co_spawn(c->stream.get_executor(), serve(c), asio::detached);
    }
  }

  void close_idle_connections() {
    std::lock_guard lock(mutex_);
    for (const auto& c : connections_)
      asio::post(c->stream.get_executor(), [c] {
        if (!c->busy) c->stream.socket().close();
      });
  }

  asio::awaitable<void> serve(std::shared_ptr<connection> c) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(1 << 20);
      auto [ec, n] = co_await http::async_read(c->stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      if (ec == http::error::body_limit) {
        response res{http::status::payload_too_large, 11};
        res.body() = "body over 1 MiB\n";
        res.keep_alive(false);
        res.prepare_payload();
        co_await http::async_write(c->stream, res, asio::as_tuple(asio::use_awaitable));
        break;
      }
      if (ec) break;
      c->busy = true;
      ++active_requests_;
      request req = parser.release();
      response res = co_await handle(req);
      if (stopping_) res.keep_alive(false);
      auto [write_error, written] = co_await http::async_write(c->stream, res, asio::as_tuple(asio::use_awaitable));
      --active_requests_;
      c->busy = false;
      if (write_error || !res.keep_alive()) break;
    }
    beast::error_code ignored;
    c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    {
      std::lock_guard lock(mutex_);
      connections_.erase(c);
    }
    --open_connections_;
  }

  // [snippet:handle]
  // Work for the pool, within the limits: at most max_in_flight at once (503 beyond), each
  // within the deadline (504 after: the task is stopped and its worker replaced).
  template <typename Work>
  asio::awaitable<response> offload(const request& req, Work work) {
    if (in_pool_.fetch_add(1) >= settings_.max_in_flight) {
      --in_pool_;
      co_return reply(req, http::status::service_unavailable, "busy: too many requests in flight\n");
    }
    response res;
    try {
      auto op = work();
      std::string body = co_await herd::with_timeout(std::move(op), settings_.deadline);
      res = reply(req, http::status::ok, std::move(body));
    } catch (const boost::system::system_error& e) {
      const auto status = e.code() == herd::errc::timed_out ? http::status::gateway_timeout
                                                            : http::status::internal_server_error;
      res = reply(req, status, std::string(e.what()) + "\n");
    }
    --in_pool_;
    co_return res;
  }

  asio::awaitable<response> handle(const request& req) {
    const std::string_view target = req.target();
    if (target == "/health") co_return reply(req, http::status::ok, "ok\n");
    if (target.starts_with("/primes")) {
      const std::optional<long> below = query_number(target, "below");
      if (!below) co_return reply(req, http::status::bad_request, "/primes?below=N\n");
      if (settings_.inline_work) co_return reply(req, http::status::ok, std::to_string(count_primes(*below)) + "\n");
      auto work = [this, n = *below]() -> asio::awaitable<std::string> {
        const long count = co_await pool_.async_apply(count_primes, n);
        co_return std::to_string(count) + "\n";
      };
      co_return co_await offload(req, std::move(work));
    }
    if (target == "/hash" && req.method() == http::verb::post) {
      auto work = [this, body = req.body()]() -> asio::awaitable<std::string> {
        const std::string hash = co_await pool_.async_apply(hash_text, body);
        co_return hash + "\n";
      };
      co_return co_await offload(req, std::move(work));
    }
    if (target == "/run/wc" && req.method() == http::verb::post) {
      auto work = [this, body = req.body()]() -> asio::awaitable<std::string> {
        herd::command wc = herd::command("wc", "-w").std_in(herd::stdio::bytes(body));
        herd::run_result r = co_await herd::async_run(io_.get_executor(), std::move(wc));
        co_return r.std_out;
      };
      co_return co_await offload(req, std::move(work));
    }
    if (target == "/crash") {
      auto work = [this]() -> asio::awaitable<std::string> {
        const int never = co_await pool_.async_apply(crash, 0);
        co_return std::to_string(never);
      };
      co_return co_await offload(req, std::move(work));
    }
    if (target == "/stats") {
      const herd::pool_stats s = pool_.stats();
      std::string text = "workers " + std::to_string(s.workers.size()) + " restarts " +
                         std::to_string(s.worker_restarts) + " pids";
      for (const auto& w : s.workers) text += " " + std::to_string(w.pid);
      co_return reply(req, http::status::ok, text + "\n");
    }
    co_return reply(req, http::status::not_found, "no such route\n");
  }
  // [/snippet]

  asio::io_context& io_;
  settings settings_;
  herd::pool pool_;
  tcp::acceptor acceptor_;
  std::mutex mutex_;
  std::set<std::shared_ptr<connection>> connections_;
  std::atomic<std::size_t> in_pool_{0};
  std::atomic<std::size_t> active_requests_{0};
  std::atomic<std::size_t> open_connections_{0};
  std::atomic<bool> stopping_{false};
};

settings parse(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto next = [&] {
      if (i + 1 >= argc) throw std::invalid_argument("http_offload: " + std::string(arg) + " needs a value");
      return std::stoul(argv[++i]);
    };
    if (arg == "--port") s.port = static_cast<unsigned short>(next());
    else if (arg == "--threads") s.threads = static_cast<unsigned>(std::max(1ul, next()));
    else if (arg == "--workers") s.workers = next();
    else if (arg == "--max-in-flight") s.max_in_flight = next();
    else if (arg == "--deadline-ms") s.deadline = std::chrono::milliseconds(next());
    else if (arg == "--inline") s.inline_work = true;
    else throw std::invalid_argument("http_offload: unknown argument '" + std::string(arg) + "'");
  }
  return s;
}

}  // namespace

// [snippet:main]
int main(int argc, char** argv) {
  herd::init(argc, argv);
  const settings s = parse(argc, argv);
  asio::io_context io(static_cast<int>(s.threads));
  herd::shutdown stop(io);  // SIGINT, SIGTERM: an orderly stop; a second one forces
  service http(io, s);
  stop.add(http.pool());                                 // drained last
  stop.on_stop("http", [&http] { return http.stop(); });  // stops accepting first
  http.listen();
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < s.threads; ++t) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  std::printf("stopped: exit code %d\n", stop.exit_code());
  return stop.exit_code();
}
// [/snippet]
