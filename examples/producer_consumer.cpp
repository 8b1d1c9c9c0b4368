// Producer-consumer: two producers, two consumers, a results queue, and a clean shutdown with
// close(): consumers take what is left, then see "closed" and return.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <vector>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:producer_consumer]
  herd::queue<int> tasks(ex, {.maxsize = 100});  // producers wait when consumers fall behind
  herd::queue<std::pair<int, long>> results(ex);

  std::vector<herd::process<void>> producers, consumers;
  for (int p = 0; p < 2; ++p)
    producers.push_back(herd::start(ex, [tasks, p]() mutable {
      for (int i = 1; i <= 5000; ++i) tasks.put(p * 5000 + i);
    }));
  for (int c = 0; c < 2; ++c)
    consumers.push_back(herd::start(ex, [tasks, results, c]() mutable {
      long sum = 0;
      herd::error_code ec;
      for (int task = tasks.get(ec); !ec; task = tasks.get(ec)) sum += static_cast<long>(task) * task;
      results.put({c, sum});  // ec is errc::closed: the queue is closed and drained
    }));

  for (auto& p : producers) co_await p.async_join();
  tasks.close();  // for everyone: no more puts; gets drain what is left, then see closed
  long total = 0;
  for (int i = 0; i < 2; ++i) total += (co_await results.async_get()).second;
  for (auto& c : consumers) co_await c.async_join();
  std::cout << "sum of squares of 1..10000: " << total << " (expected " << 10000L * 10001 * 20001 / 6 << ")"
            << std::endl;
  // [/snippet]
}
