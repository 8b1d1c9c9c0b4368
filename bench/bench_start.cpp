// Start methods (issue 12), per start method, with a parent of 0, 200 MiB and 1 GiB of touched
// memory: start + join of a function child that does nothing, and the time the start call holds
// the loop; the cost of making a pool of two workers and getting its first answer; and how late
// a 1 ms ticker on the same loop runs while 20 children start at once, and while a pool replaces
// SIGKILLed workers (what every other connection of a server would feel).
// Twin: bench/python/start.py.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <sys/mman.h>

namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr int trials = 5;
constexpr int kills = 10;

constexpr int child_trials = 20;
constexpr int burst = 20;

int triv(int x) { return x + 1; }
void noop() {}
int my_pid() { return ::getpid(); }

const char* name_of(herd::start_method m) {
  return m == herd::start_method::spawn ? "spawn" : m == herd::start_method::forkserver ? "forkserver" : "fork";
}

// A parent of `mib` MiB, every page touched (a fork copies page tables for all of it).
void* grow(std::size_t mib) {
  if (mib == 0) return nullptr;
  void* memory = ::mmap(nullptr, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) std::abort();
  std::memset(memory, 1, mib << 20);
  return memory;
}

asio::awaitable<void> pool_start(asio::any_io_executor ex, herd::start_method method, std::size_t mib) {
  std::vector<double> samples;
  for (int t = 0; t < trials; ++t) {
    const auto start = clock::now();
    herd::pool pool(ex, {.processes = 2, .start_method = method});
    if (co_await pool.async_apply(triv, 1) != 2) std::abort();
    samples.push_back(micros_since(start) / 1000);
  }
  report(std::string("herd_pool_start_") + name_of(method) + "_" + std::to_string(mib) + "mib", median(samples), "ms");
}

// A 1 ms ticker on the loop: the worst lateness of one tick (not accumulated) until told to stop.
// Its state is shared: the ticker's last wait ends after the measuring coroutine has returned.
struct ticker_state {
  bool ticking = true;
  double worst = 0;
};
std::shared_ptr<ticker_state> start_ticker(asio::any_io_executor ex) {
  auto state = std::make_shared<ticker_state>();
  asio::co_spawn(ex, [ex, state]() -> asio::awaitable<void> {
    asio::steady_timer tick(ex);
    while (state->ticking) {
      const auto due = clock::now() + std::chrono::milliseconds(1);
      tick.expires_at(due);
      co_await tick.async_wait(asio::deferred);
      state->worst = std::max(state->worst, std::chrono::duration<double, std::milli>(clock::now() - due).count());
    }
  }, asio::detached);
  return state;
}

// Start + join of a child that does nothing, and the start call alone (what the loop is held).
asio::awaitable<void> child_start_join(asio::any_io_executor ex, herd::start_method method, std::size_t mib) {
  herd::process_options options;
  options.start_method = method;
  std::vector<double> whole, call;
  for (int t = 0; t < child_trials; ++t) {
    const auto start = clock::now();
    auto child = herd::start(ex, options, noop);
    call.push_back(micros_since(start) / 1000);
    co_await child.async_join();
    whole.push_back(micros_since(start) / 1000);
  }
  const std::string suffix = std::string(name_of(method)) + "_" + std::to_string(mib) + "mib";
  report("herd_process_start_join_" + suffix, median(whole), "ms");
  report("herd_process_start_call_" + suffix, median(call), "ms");
}

// A 1 ms ticker on the loop that starts 20 children at once and joins them: its worst lateness.
asio::awaitable<void> burst_stall(asio::any_io_executor ex, herd::start_method method, std::size_t mib) {
  const auto ticker = start_ticker(ex);
  asio::steady_timer settle(ex, std::chrono::milliseconds(5));
  co_await settle.async_wait(asio::deferred);
  herd::process_options options;
  options.start_method = method;
  std::vector<herd::process<>> children;
  for (int i = 0; i < burst; ++i) {
    children.push_back(herd::start(ex, options, noop));
    // Each start is its own turn of the loop, as a server's requests would make them.
    asio::steady_timer yield(ex, std::chrono::microseconds(0));
    co_await yield.async_wait(asio::deferred);
  }
  for (auto& child : children) co_await child.async_join();
  ticker->ticking = false;
  report(std::string("herd_burst20_ticker_late_") + name_of(method) + "_" + std::to_string(mib) + "mib", ticker->worst,
         "ms");
}

// A 1 ms ticker beside a pool of two whose workers are SIGKILLed one after another: the
// ticker's worst lateness (one tick's, not accumulated) while the pool replaces them.
asio::awaitable<void> replacement_stall(asio::any_io_executor ex, herd::start_method method, std::size_t mib) {
  herd::pool pool(ex, {.processes = 2, .start_method = method});
  co_await pool.async_apply(triv, 1);
  const auto ticker = start_ticker(ex);
  for (int k = 0; k < kills; ++k) {
    const int victim = co_await pool.async_apply(my_pid);
    ::kill(victim, SIGKILL);
    while (co_await pool.async_apply(my_pid) == victim) {
    }
    asio::steady_timer gap(ex, std::chrono::milliseconds(5));
    co_await gap.async_wait(asio::deferred);
  }
  ticker->ticking = false;
  report(std::string("herd_pool_replace_ticker_late_") + name_of(method) + "_" + std::to_string(mib) + "mib",
         ticker->worst, "ms");
}

}  // namespace

int main(int argc, char** argv) {
  herd::init(argc, argv);  // spawned workers and the forkserver take their role here
  herd::set_start_method(herd::start_method::forkserver);  // started while the parent is small
  herd::set_start_method(herd::start_method::fork);
  asio::io_context io;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    std::size_t grown = 0;
    for (const std::size_t mib : {std::size_t{0}, std::size_t{200}, std::size_t{1024}}) {
      grow(mib - grown);
      grown = mib;
      // Fork last: the teardown of forked workers of a large parent would still run beside the next.
      for (const auto method : {herd::start_method::spawn, herd::start_method::forkserver, herd::start_method::fork}) {
        co_await child_start_join(io.get_executor(), method, mib);
        co_await burst_stall(io.get_executor(), method, mib);
        co_await pool_start(io.get_executor(), method, mib);
        co_await replacement_stall(io.get_executor(), method, mib);
      }
    }
  }, [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
