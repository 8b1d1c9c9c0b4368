// Python's "joining processes that use queues" trap: a child puts a 1,000,000-byte message and
// the parent joins it before getting. Python deadlocks (the child's feeder thread cannot finish
// writing into the full pipe); herd completes in either order, because a large message waits
// in shared memory, not in the pipe.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:join_before_get]
  herd::queue<std::string> q(ex);
  auto child = herd::start(ex, [q]() mutable { q.put(std::string(1'000'000, 'X')); });
  auto status = co_await child.async_join();  // first join ...
  std::string big = co_await q.async_get();   // ... then get: no deadlock
  std::cout << "join before get: " << big.size() << " bytes, child " << status.to_string() << std::endl;
  // [/snippet]

  auto second = herd::start(ex, [q]() mutable { q.put(std::string(1'000'000, 'Y')); });
  big = co_await q.async_get();
  status = co_await second.async_join();
  std::cout << "get before join: " << big.size() << " bytes, child " << status.to_string() << std::endl;
}
