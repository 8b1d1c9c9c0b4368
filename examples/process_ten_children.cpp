// Ten children started in a loop, then all joined.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <vector>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:loop]
  std::vector<herd::process<int>> children;
  for (int i = 0; i < 10; ++i)
    children.push_back(herd::start(ex, [](int n) { return n * n; }, i));
  int total = 0;
  for (auto& child : children) total += co_await child.async_result();  // joins, then reads the result
  std::cout << "ten children, sum of squares " << total << std::endl;
  // [/snippet]
}
