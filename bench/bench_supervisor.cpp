// Supervision (issue 15): how long from a child's SIGKILL to its replacement running, and what
// supervising 1,000 idle children costs the parent. Twin: bench/python/restart_always.py.
//   restart latency: the supervisor's "started" event for the new run, timed from the kill;
//     for a program child (sleep 1000, as the twin's Popen) and a function child (fork).
//   1,000 idle children, heartbeats watched (each beats every 500 ms, 2 s allowed): the
//     parent's CPU time per second of wall time and its resident memory.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <fstream>
#include <optional>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}
[[noreturn]] void beat_every_500ms() {
  for (;;) {
    herd::this_process::heartbeat();
    ::usleep(500000);
  }
}

asio::awaitable<void> sleep_for(asio::any_io_executor ex, std::chrono::milliseconds d) {
  asio::steady_timer t(ex, d);
  co_await t.async_wait(asio::deferred);
}

double percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[std::min(samples.size() - 1, static_cast<std::size_t>(p * static_cast<double>(samples.size())))];
}

// Kills the child `rounds` times; each time, the latency to its next "started" event.
asio::awaitable<void> restart_latency(asio::any_io_executor ex, const char* name, herd::child_spec spec, int rounds) {
  std::optional<herd_bench::clock::time_point> killed;
  std::vector<double> samples;
  bool started = false;
  herd::supervisor_options options{.name = name, .intensity = {static_cast<std::size_t>(rounds) + 1, 60s}};
  options.on_event = [&](const herd::supervisor_event& e) {
    if (e.what != herd::supervisor_event::kind::started) return;
    if (killed) samples.push_back(herd_bench::micros_since(*killed));
    killed.reset();
    started = true;
  };
  // Every kill is the first in a while for the backoff: no wait between attempts.
  options.backoff.reset_after = 0ms;
  herd::supervisor sup(ex, {std::move(spec)}, options);
  asio::co_spawn(ex, sup.async_run(), asio::detached);
  for (int k = 0; k < rounds; ++k) {
    while (!started) co_await sleep_for(ex, 1ms);
    co_await sleep_for(ex, 2ms);  // settled: its exec done
    started = false;
    const int pid = sup.which_children()[0].pid;
    killed = herd_bench::clock::now();
    ::kill(pid, SIGKILL);
  }
  while (!started) co_await sleep_for(ex, 1ms);
  co_await sup.async_stop();
  herd_bench::report(std::string("herd_restart_") + name + "_p50", herd_bench::median(samples) / 1000.0, "ms");
  herd_bench::report(std::string("herd_restart_") + name + "_p99", percentile(samples, 0.99) / 1000.0, "ms");
}

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

asio::awaitable<void> idle_children(asio::any_io_executor ex, int count) {
  std::vector<herd::child_spec> specs;
  for (int k = 0; k < count; ++k)
    specs.push_back(herd::child_spec::function("idle-" + std::to_string(k), beat_every_500ms).heartbeat(2s));
  const long rss_before = resident_kib();
  herd::supervisor sup(ex, std::move(specs), {.name = "idle"});
  // A 1 ms ticker on the same loop while the children start: how late it gets.
  bool starting = true;
  double worst_late_ms = 0;
  asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
    while (starting) {
      const auto asked = herd_bench::clock::now();
      co_await sleep_for(ex, 1ms);
      worst_late_ms = std::max(worst_late_ms, herd_bench::micros_since(asked) / 1000.0 - 1.0);
    }
  }, asio::detached);
  const auto began = herd_bench::clock::now();
  asio::co_spawn(ex, sup.async_run(), asio::detached);
  for (;;) {
    std::size_t running = 0;
    for (const auto& c : sup.which_children()) running += c.state == herd::child_state::running;
    if (running == static_cast<std::size_t>(count)) break;
    co_await sleep_for(ex, 10ms);
  }
  starting = false;
  herd_bench::report("herd_supervise_1000_start", herd_bench::micros_since(began) / 1e6, "s");
  herd_bench::report("herd_supervise_1000_start_ticker_late", worst_late_ms, "ms");
  co_await sleep_for(ex, 1s);
  const double cpu0 = cpu_seconds();
  const auto wall0 = herd_bench::clock::now();
  co_await sleep_for(ex, 5s);
  const double cpu = cpu_seconds() - cpu0;
  const double wall = herd_bench::micros_since(wall0) / 1e6;
  herd_bench::report("herd_supervise_1000_parent_cpu", 100.0 * cpu / wall, "%");
  herd_bench::report("herd_supervise_1000_parent_rss", static_cast<double>(resident_kib()) / 1024.0, "MiB");
  herd_bench::report("herd_supervise_1000_rss_added", static_cast<double>(resident_kib() - rss_before) / 1024.0, "MiB");
  bool missed = false;
  for (const auto& c : sup.which_children()) missed = missed || c.restarts != 0;
  herd_bench::report("herd_supervise_1000_restarts", missed ? 1 : 0, "any");
  const auto stop_began = herd_bench::clock::now();
  co_await sup.async_stop();
  herd_bench::report("herd_supervise_1000_stop", herd_bench::micros_since(stop_began) / 1e6, "s");
}

}  // namespace

int main(int argc, char** argv) {
  herd::init(argc, argv);
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  const int idle = argc > 2 ? std::atoi(argv[2]) : 1000;
  // Each function child holds a pidfd and an outcome socket.
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
  asio::io_context io;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    // Named first: g++ 12 cannot take braced lists inside a co_await expression.
    auto program = herd::child_spec::program("sleeper", herd::command("sleep", std::vector<std::string>{"1000"}));
    herd::process_options forked;
    forked.start_method = herd::start_method::fork;
    auto function = herd::child_spec::function("sleeper", forked, sleep_forever);
    co_await restart_latency(ex, "program", std::move(program), rounds);
    co_await restart_latency(ex, "function", std::move(function), rounds);
    co_await idle_children(ex, idle);
  }, [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
