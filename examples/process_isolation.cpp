// Data isolation: a global changed in the child is unchanged in the parent.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <vector>

namespace asio = boost::asio;

// [snippet:isolation]
std::vector<int> result;  // a global, as in the Python tutorial

void square_list(std::vector<int> numbers) {
  for (int n : numbers) result.push_back(n * n);
  std::cout << "result in the child: " << result.size() << " items" << std::endl;
}

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  auto child = herd::start(ex, square_list, std::vector<int>{1, 2, 3, 4});
  co_await child.async_join();
  std::cout << "result in the parent: " << result.size() << " items" << std::endl;  // still 0
}
// [/snippet]
