// Tasks that mostly wait (a network call, a timer, a child program) need few processes: with
// `concurrency_per_worker`, each worker runs several coroutine tasks at once on its own
// io_context, which Python's pools cannot do. `herd::with_timeout` bounds one call.
#include <herd/herd.hpp>

#include "main.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <set>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// [snippet:task]
// Stands for a request to a slow service: it waits `ms` on the worker's own event loop.
asio::awaitable<int> fetch(int ms) {
  asio::steady_timer reply(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await reply.async_wait(asio::deferred);
  co_return ::getpid();
}
// [/snippet]

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:pool]
  herd::pool pool(ex, {.processes = 2, .concurrency_per_worker = 10});
  std::vector<int> delays(40, 100);  // forty requests of 100 ms
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int> pids = co_await pool.async_map(fetch, delays, {.chunksize = 1});
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  std::printf("%zu requests answered by %zu workers\n", pids.size(), std::set<int>(pids.begin(), pids.end()).size());
  std::fprintf(stderr, "took %lld ms (one at a time per worker: 2000 ms)\n", static_cast<long long>(took.count()));

  try {
    co_await herd::with_timeout(pool.async_apply(fetch, 5000), 200ms);
  } catch (const boost::system::system_error& e) {
    std::printf("slow request: %s\n", e.code() == herd::errc::timed_out ? "timed out" : "failed");
  }
  // The timed-out request was cancelled in its worker, which serves on.
  std::printf("then: answered by worker %s\n", co_await pool.async_apply(fetch, 10) > 0 ? "yes" : "no");
  // [/snippet]
}
