// herd::pool, figure for figure against bench/python/pool.py (multiprocessing.Pool,
// ProcessPoolExecutor, Pebble): a round trip, map throughput, imap_unordered of ~50 µs tasks
// against the ideal, a CPU-bound split, and recovery from a worker's SIGKILL.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr int round_trips = 2000, round_trip_warmup = 200;
constexpr int rounds = 3;
constexpr int map_default_n = 1'000'000;
constexpr int map_chunk1_n = 100'000;
constexpr int burn_pool_n = 200'000, burn_serial_n = 20'000;
constexpr int kill_trials = 5;

int triv(int x) { return x + 1; }

// ~50 µs of CPU for the calibrated n (the compiler may not fold the loop: n is run-time data).
long long burn(long long n) {
  long long x = 0;
  for (long long i = 0; i < n; ++i) {
    x += i ^ (x >> 3);
    asm volatile("" : "+r"(x));
  }
  return x;
}

// The seed's job: sum(i + i^2 + i^3) over [from, to). C++ needs a longer range than Python's 3M
// for the split to be measurable next to a task's dispatch: 300M, ~0.5 s serial here.
double cpu_part(long long from, long long to) {
  double sum = 0;
  for (long long i = from; i < to; ++i) {
    const double x = static_cast<double>(i);
    sum += x + x * x + x * x * x;
  }
  return sum;
}
constexpr long long cpu_range = 300'000'000;

// The pid of the worker running `sleeper`, in memory every worker shares (fork keeps the mapping).
std::atomic<int>* running_pid = nullptr;
int sleeper() {
  running_pid->store(::getpid());
  std::this_thread::sleep_for(std::chrono::seconds(10));
  return 0;
}

double seconds_since(clock::time_point start) { return std::chrono::duration<double>(clock::now() - start).count(); }
// CPU time of this process (every thread), not of its workers.
double own_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

long long calibrate_burn() {
  long long n = 20000;
  for (int i = 0; i < 4; ++i) {
    std::vector<double> per_call;
    for (int r = 0; r < 5; ++r) {
      const auto start = clock::now();
      for (int k = 0; k < 200; ++k) burn(n);
      per_call.push_back(micros_since(start) / 200);
    }
    n = std::max<long long>(1, static_cast<long long>(static_cast<double>(n) * 50.0 / median(per_call)));
  }
  return n;
}

// One part only, for a profiler: roundtrip, map, imap, cpu or recovery (default: all).
std::string only;
bool wanted(const char* part) { return only.empty() || only == part; }

asio::awaitable<void> round_trip(herd::pool& pool) {
  std::vector<double> samples;
  for (int i = 0; i < round_trip_warmup + round_trips; ++i) {
    const auto start = clock::now();
    const int r = co_await pool.async_apply(triv, i);
    if (r != i + 1) std::abort();
    if (i >= round_trip_warmup) samples.push_back(micros_since(start));
  }
  report("herd_pool_apply_roundtrip", median(samples), "us");
}

asio::awaitable<void> maps(herd::pool& pool) {
  std::vector<double> samples;
  std::vector<int> input(map_default_n);
  std::iota(input.begin(), input.end(), 0);
  co_await pool.async_map(triv, input);  // warm-up
  for (int r = 0; r < rounds; ++r) {
    const auto start = clock::now();
    const std::vector<int> out = co_await pool.async_map(triv, input);
    samples.push_back(seconds_since(start));
    if (out.back() != map_default_n) std::abort();
  }
  report("herd_pool_map_default", map_default_n / median(samples), "tasks/s");

  input.resize(map_chunk1_n);
  samples.clear();
  for (int r = 0; r < rounds; ++r) {
    const auto start = clock::now();
    const std::vector<int> out = co_await pool.async_map(triv, input, {.chunksize = 1});
    samples.push_back(seconds_since(start));
    if (out.back() != map_chunk1_n) std::abort();
  }
  report("herd_pool_map_chunksize1", map_chunk1_n / median(samples), "tasks/s");
}

asio::awaitable<void> imap(herd::pool& pool, unsigned cpus) {
  std::vector<double> samples;
  const long long n = calibrate_burn();
  std::vector<double> parent_cpu;
  for (int r = 0; r < rounds; ++r) {
    const std::vector<long long> burns(burn_pool_n, n);
    const double cpu_before = own_cpu_seconds();
    const auto start = clock::now();
    auto stream = pool.imap_unordered(burn, burns);
    int got = 0;
    while (co_await stream.async_next()) ++got;
    samples.push_back(seconds_since(start));
    parent_cpu.push_back((own_cpu_seconds() - cpu_before) * 1e6 / burn_pool_n);
    if (got != burn_pool_n) std::abort();
  }
  report("herd_pool_imap_unordered_50us", burn_pool_n / median(samples), "tasks/s");
  // What the parent spends per task (its share of the two cores), to see where the ideal goes.
  report("herd_pool_imap_parent_cpu_per_task", median(parent_cpu), "us");
  samples.clear();
  for (int r = 0; r < rounds; ++r) {
    const auto start = clock::now();
    for (int i = 0; i < burn_serial_n; ++i) burn(n);
    samples.push_back(seconds_since(start));
  }
  report("herd_burn50_serial", burn_serial_n / median(samples), "tasks/s");
  report("herd_cpus", cpus, "count");
}

asio::awaitable<void> cpu_split(herd::pool& pool, unsigned cpus) {
  std::vector<double> serial, pooled;
  for (int r = 0; r < rounds; ++r) {
    auto start = clock::now();
    const double expected = cpu_part(0, cpu_range);
    serial.push_back(seconds_since(start));
    std::vector<std::tuple<long long, long long>> parts;
    const long long step = (cpu_range + cpus - 1) / cpus;
    for (long long lo = 0; lo < cpu_range; lo += step) parts.emplace_back(lo, std::min(lo + step, cpu_range));
    start = clock::now();
    const std::vector<double> sums = co_await pool.async_starmap(cpu_part, parts, {.chunksize = 1});
    pooled.push_back(seconds_since(start));
    const double total = std::accumulate(sums.begin(), sums.end(), 0.0);
    if (std::abs(total / expected - 1) > 1e-9) std::abort();
  }
  report("herd_cpu_serial", median(serial), "s");
  report("herd_cpu_pool", median(pooled), "s");
  report("herd_cpu_speedup", median(serial) / median(pooled), "x");
}

asio::awaitable<void> throughput(asio::any_io_executor ex) {
  const unsigned cpus = herd::cpu_count();
  herd::pool pool(ex, {.processes = cpus});
  if (wanted("roundtrip")) co_await round_trip(pool);
  if (wanted("map")) co_await maps(pool);
  if (wanted("imap")) co_await imap(pool, cpus);
  if (wanted("cpu")) co_await cpu_split(pool, cpus);
}

// A fresh pool of two per trial, as the Python twin: from the SIGKILL of the worker running a
// sleeping task, how long until that task fails, and until a task submitted right after the kill
// returns.
asio::awaitable<void> recovery(asio::any_io_executor ex) {
  std::vector<double> failures, nexts;
  std::mt19937 random(42);
  for (int trial = 0; trial < kill_trials; ++trial) {
    herd::pool pool(ex, {.processes = 2});
    for (int i = 0; i < 8; ++i) co_await pool.async_apply(triv, i);
    running_pid->store(0);
    auto victim = pool.submit(sleeper);
    while (running_pid->load() == 0) {
      asio::steady_timer t(ex, std::chrono::microseconds(500));
      co_await t.async_wait(asio::deferred);
    }
    asio::steady_timer jitter(ex, std::chrono::microseconds(std::uniform_int_distribution<int>(0, 100000)(random)));
    co_await jitter.async_wait(asio::deferred);
    const auto killed = clock::now();
    ::kill(running_pid->load(), SIGKILL);
    auto after = pool.submit(triv, 0);
    double next_ms = -1;
    asio::co_spawn(ex, [&]() -> asio::awaitable<void> {
      if (co_await after.async_get() != 1) std::abort();
      next_ms = micros_since(killed) / 1000;
    }, asio::detached);
    try {
      co_await victim.async_get();
      std::abort();  // it cannot succeed
    } catch (const herd::task_error& e) {
      if (e.code() != herd::errc::worker_died) std::abort();
    }
    failures.push_back(micros_since(killed) / 1000);
    while (next_ms < 0) {
      asio::steady_timer t(ex, std::chrono::microseconds(200));
      co_await t.async_wait(asio::deferred);
    }
    nexts.push_back(next_ms);
  }
  report("herd_pool_kill_failure_ms", median(failures), "ms");
  report("herd_pool_kill_next_ms", median(nexts), "ms");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) only = argv[1];
  void* shared = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  running_pid = new (shared) std::atomic<int>(0);
  asio::io_context io;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    co_await throughput(io.get_executor());
    if (wanted("recovery")) co_await recovery(io.get_executor());
  }, [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
