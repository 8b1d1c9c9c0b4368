// Queues and pipes, one producer child → the parent's coroutine:
//  - 64-byte messages: put() per message (the default), pack_puts, put_many;
//  - 1 MiB messages (shared slab);
//  - one 1.5 GiB message (a memfd), timed from the producer's put() to the parent's get(), and
//    the two apart (3 rounds: each holds ~4.5 GiB at its peak);
//  - pipe round trip of a small message, parent coroutine ↔ child (blocking, so it polls for
//    channel_options::spin before sleeping), against a raw SEQPACKET socketpair ping-pong
//    between two processes that block in recv, and one whose both sides poll.
// Each figure is the median of `rounds` runs, variants interleaved.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr int rounds = 5;
constexpr int small_count = 400'000;
constexpr int large_count = 1000;
constexpr std::size_t large_size = 1 << 20;
constexpr int huge_rounds = 3;
constexpr std::size_t huge_size = std::size_t(3) << 29;  // 1.5 GiB
constexpr int round_trips = 20'000;

using small_message = std::array<char, 64>;

enum class put_style { each, packed, many };

void run(asio::io_context& io, asio::awaitable<void> work) {
  asio::co_spawn(io, std::move(work), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  io.restart();
}

// Messages per second received by the parent.
asio::awaitable<void> small_messages(asio::any_io_executor ex, put_style style, std::vector<double>& rates) {
  herd::queue<small_message> q(ex, {.pack_puts = style == put_style::packed});
  const auto start = clock::now();
  auto producer = herd::start(ex, [q, style]() mutable {
    small_message m{};
    if (style == put_style::many) {
      std::vector<small_message> chunk(1000, m);
      for (int i = 0; i < small_count; i += 1000) q.put_many(chunk);
    } else {
      for (int i = 0; i < small_count; ++i) q.put(m);
    }
  });
  for (int i = 0; i < small_count; ++i) (void)co_await q.async_get();
  rates.push_back(small_count / (micros_since(start) / 1e6));
  co_await producer.async_join();
}

// MB/s (10^6 bytes) received by the parent.
asio::awaitable<void> large_messages(asio::any_io_executor ex, std::vector<double>& rates) {
  herd::queue<std::string> q(ex);
  const auto start = clock::now();
  auto producer = herd::start(ex, [q]() mutable {
    const std::string m(large_size, 'x');
    for (int i = 0; i < large_count; ++i) q.put(m);
  });
  for (int i = 0; i < large_count; ++i)
    if ((co_await q.async_get()).size() != large_size) std::abort();
  rates.push_back(double(large_count) * large_size / micros_since(start));
  co_await producer.async_join();
}

// One 1.5 GiB std::string, child -> parent. CLOCK_MONOTONIC is the same clock in both
// processes, so the producer's timestamps and the parent's compare.
struct huge_times {
  double rate;  // MB/s from the start of put() to the end of get()
  double put;   // seconds in put()
  double get;   // seconds from the end of put() to the end of get()
};

asio::awaitable<void> huge_message(asio::any_io_executor ex, std::vector<huge_times>& samples) {
  herd::queue<std::string> q(ex);
  auto producer = herd::start(ex, [q]() mutable {
    std::string m(huge_size, 'x');
    m.back() = '!';
    const auto start = clock::now();
    q.put(m);
    return std::pair<double, double>(std::chrono::duration<double>(start.time_since_epoch()).count(),
                                     std::chrono::duration<double>(clock::now().time_since_epoch()).count());
  });
  const std::string m = co_await q.async_get();
  const double end = std::chrono::duration<double>(clock::now().time_since_epoch()).count();
  if (m.size() != huge_size || m.back() != '!') std::abort();
  const auto [put_start, put_end] = co_await producer.async_result();
  samples.push_back({huge_size / (end - put_start) / 1e6, put_end - put_start, end - put_end});
}

// Microseconds per round trip.
asio::awaitable<void> pipe_round_trips(asio::any_io_executor ex, std::vector<double>& samples) {
  auto [a, b] = herd::make_pipe<int>(ex);
  auto echo = herd::start(ex, [a = a, b = b]() mutable {
    a.close();  // the child's copy of the parent's end: else the parent's close() is no EOF here
    herd::error_code ec;
    for (int v = b.recv(ec); !ec; v = b.recv(ec)) b.send(v + 1);
  });
  b.close();
  co_await a.async_send(0);  // the child is up
  (void)co_await a.async_recv();
  const auto start = clock::now();
  for (int i = 0; i < round_trips; ++i) {
    co_await a.async_send(i);
    if (co_await a.async_recv() != i + 1) std::abort();
  }
  samples.push_back(micros_since(start) / round_trips);
  a.close();
  co_await echo.async_join();
}

// Both sides blocking in recv (the baseline), or both polling with MSG_DONTWAIT (the
// floor: no process ever sleeps, so no wake-up is paid).
void raw_socketpair_round_trips(std::vector<double>& samples, bool polling) {
  const int flags = polling ? MSG_DONTWAIT : 0;
  const auto receive = [flags](int fd, int& v) {
    ssize_t n;
    while ((n = ::recv(fd, &v, sizeof v, flags)) < 0 && errno == EAGAIN) {
    }
    return n;
  };
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    int v;
    while (receive(sv[1], v) == sizeof v) {
      ++v;
      ::send(sv[1], &v, sizeof v, MSG_NOSIGNAL);
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  int v = 0;
  ::send(sv[0], &v, sizeof v, 0);
  receive(sv[0], v);
  const auto start = clock::now();
  for (int i = 0; i < round_trips; ++i) {
    ::send(sv[0], &i, sizeof i, 0);
    if (receive(sv[0], v) != sizeof v || v != i + 1) std::abort();
  }
  samples.push_back(micros_since(start) / round_trips);
  ::close(sv[0]);
  int status;
  ::waitpid(pid, &status, 0);
}

}  // namespace

int main() {
  std::vector<double> each, packed, many, large, pipe, raw, raw_polling;
  std::vector<huge_times> huge;
  asio::io_context io;
  for (int round = 0; round < rounds; ++round) {
    run(io, small_messages(io.get_executor(), put_style::each, each));
    run(io, small_messages(io.get_executor(), put_style::packed, packed));
    run(io, small_messages(io.get_executor(), put_style::many, many));
    run(io, large_messages(io.get_executor(), large));
    if (round < huge_rounds) run(io, huge_message(io.get_executor(), huge));
    run(io, pipe_round_trips(io.get_executor(), pipe));
    raw_socketpair_round_trips(raw, false);
    raw_socketpair_round_trips(raw_polling, true);
  }
  report("herd_queue_64b_put", median(each), "msgs/s");
  report("herd_queue_64b_pack_puts", median(packed), "msgs/s");
  report("herd_queue_64b_put_many", median(many), "msgs/s");
  report("herd_queue_1mib", median(large), "MB/s");
  const auto huge_median = [&](double huge_times::*field) {
    std::vector<double> values;
    for (const auto& h : huge) values.push_back(h.*field);
    return median(values);
  };
  report("herd_queue_1_5gib", huge_median(&huge_times::rate), "MB/s");
  report("herd_queue_1_5gib_put", huge_median(&huge_times::put), "s");
  report("herd_queue_1_5gib_get", huge_median(&huge_times::get), "s");
  report("herd_pipe_round_trip", median(pipe), "us");
  report("raw_socketpair_round_trip", median(raw), "us");
  report("raw_socketpair_round_trip_polling", median(raw_polling), "us");
}
