// A scope owns the children started in it: leaving it stops and reaps whatever still runs.
#include <herd/herd.hpp>

#include "main.hpp"

#include <csignal>
#include <iostream>
#include <numeric>
#include <vector>

namespace asio = boost::asio;

long crunch(std::vector<long> numbers) { return std::accumulate(numbers.begin(), numbers.end(), 0L); }

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  std::vector<long> input(1000);
  std::iota(input.begin(), input.end(), 1);
  int helper_pid = 0;
  // [snippet:scoped]
  long answer = co_await herd::scoped(ex, [&](herd::scope& s) -> asio::awaitable<long> {
    auto worker = s.start(crunch, input);                     // a function child
    auto helper = s.spawn(herd::command("sleep", "infinity"));  // a program that never ends
    helper_pid = helper.pid();
    co_return co_await worker.async_result();
  });  // the helper is stopped and reaped here, even if the body threw or was cancelled
  // [/snippet]
  std::cout << "answer " << answer << "; helper " << (::kill(helper_pid, 0) == 0 ? "still runs" : "is gone")
            << std::endl;
}
