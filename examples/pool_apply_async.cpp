// Python's Pool(4) with ten apply_async tasks, then close() and join(): the tasks sleep a while
// and print which worker ran them.
#include <herd/herd.hpp>

#include "main.hpp"

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <unistd.h>

namespace asio = boost::asio;

// [snippet:task]
int run(int i) {
  std::printf("task %d runs in worker %d\n", i, ::getpid());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(50 + 50 * (i % 4)));
  return i;
}
// [/snippet]

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  std::printf("parent %d starts\n", ::getpid());
  // [snippet:pool]
  herd::pool pool(ex, {.processes = 4});
  std::vector<herd::pool_task<int>> tasks;
  for (int i = 0; i < 10; ++i) tasks.push_back(pool.submit(run, i));  // apply_async
  pool.close();                  // no more tasks
  co_await pool.async_join();    // every task done, every worker gone
  int total = 0;
  for (auto& task : tasks) total += co_await task.async_get();
  // [/snippet]
  std::printf("all tasks done, results add up to %d\nparent %d ends\n", total, ::getpid());
}
