// The producer-consumer model of the Python tutorials, written twice: by hand (two producers, a
// queue, two consumers, one None sentinel per consumer so that each knows to stop), and as a
// pipeline of a few lines that does the same work with the same guarantees.
#include <herd/herd.hpp>

#include "main.hpp"

#include <cstdio>
#include <optional>
#include <vector>

namespace asio = boost::asio;

namespace {

long square(int x) { return static_cast<long>(x) * x; }

}  // namespace

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:by_hand]
  herd::queue<std::optional<int>> tasks(ex, {.maxsize = 100});  // std::nullopt is Python's None
  herd::queue<long> sums(ex);
  std::vector<herd::process<void>> producers, consumers;
  for (int p = 0; p < 2; ++p)
    producers.push_back(herd::start(ex, [tasks, p]() mutable {
      for (int i = 1; i <= 5000; ++i) tasks.put(p * 5000 + i);
    }));
  for (int c = 0; c < 2; ++c)
    consumers.push_back(herd::start(ex, [tasks, sums]() mutable {
      long sum = 0;
      for (std::optional<int> task = tasks.get(); task; task = tasks.get()) sum += square(*task);
      sums.put(sum);  // it took a None: no more work
    }));
  for (auto& p : producers) co_await p.async_join();
  for (int c = 0; c < 2; ++c) co_await tasks.async_put(std::nullopt);  // one None per consumer
  long by_hand = 0;
  for (int c = 0; c < 2; ++c) by_hand += co_await sums.async_get();
  for (auto& c : consumers) co_await c.async_join();
  // [/snippet]
  std::printf("by hand:    %ld\n", by_hand);

  // [snippet:pipeline]
  std::vector<int> numbers;  // what the two producers made
  for (int i = 1; i <= 10000; ++i) numbers.push_back(i);
  herd::stage_options two_consumers;
  two_consumers.processes = 2;
  long as_pipeline = 0;
  auto squares = herd::from_range(ex, numbers).map("square", square, two_consumers);
  co_await squares.async_for_each([&as_pipeline](long x) { as_pipeline += x; });
  // [/snippet]
  std::printf("pipeline:   %ld\nexpected:   %ld\n", as_pipeline, 10000L * 10001 * 20001 / 6);
}
