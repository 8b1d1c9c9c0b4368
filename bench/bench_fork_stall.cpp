// How long herd::start (fork) holds the calling thread, and so the event loop, as the parent's
// memory grows: the start call itself, and the worst lateness of a 1 ms ticker on the same loop
// while 20 children start and are joined. Its twin: bench/python/fork_stall.py.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace asio = boost::asio;
using namespace herd_bench;
using namespace std::chrono_literals;

namespace {

constexpr int starts = 20;

void noop() {}

struct stall {
  std::vector<double> start_call;  // µs inside herd::start
  double worst_tick_late = 0;      // µs
};

asio::awaitable<void> ticker(bool& running, double& worst) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (running) {
    const auto due = clock::now() + 1ms;
    timer.expires_at(due);
    co_await timer.async_wait(asio::use_awaitable);
    worst = std::max(worst, std::chrono::duration<double, std::micro>(clock::now() - due).count());
  }
}

asio::awaitable<void> start_children(bool& running, stall& result) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer pause(ex);
  for (int i = 0; i < starts; ++i) {
    const auto start = clock::now();
    auto p = herd::start(ex, noop);
    result.start_call.push_back(micros_since(start));
    co_await p.async_join();
    pause.expires_after(2ms);  // let the ticker run between starts
    co_await pause.async_wait(asio::use_awaitable);
  }
  running = false;
}

stall measure() {
  asio::io_context io;
  stall result;
  bool running = true;
  auto rethrow = [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  };
  asio::co_spawn(io, ticker(running, result.worst_tick_late), rethrow);
  asio::co_spawn(io, start_children(running, result), rethrow);
  io.run();
  return result;
}

}  // namespace

int main() {
  for (const std::size_t mib : {0, 200, 1024}) {
    // Touched memory is what fork must copy page tables for.
    std::unique_ptr<char[]> memory(mib ? new char[mib << 20] : nullptr);
    if (memory) std::memset(memory.get(), 1, mib << 20);
    const stall s = measure();
    const std::string at = "_" + std::to_string(mib) + "mib";
    report("herd_start_call" + at, median(s.start_call), "us");
    report("herd_start_call_max" + at, *std::max_element(s.start_call.begin(), s.start_call.end()), "us");
    report("herd_ticker_worst_late" + at, s.worst_tick_late, "us");
  }
}
