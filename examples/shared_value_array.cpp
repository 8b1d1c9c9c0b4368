// Python's Value and Array example: a child sets a shared double and negates a shared array; the
// parent sees both changes (unlike a global, see process_isolation.cpp).
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <ranges>
#include <vector>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:value_array]
  herd::shared_value<double> num(ex, 0.0);                       // Value('d', 0.0)
  herd::shared_array<int> arr(ex, std::views::iota(0, 10));      // Array('i', range(10))
  auto child = herd::start(ex, [num, arr]() mutable {
    num = 3.1415927;
    for (int& a : arr) a = -a;
  });
  co_await child.async_join();
  std::cout.precision(8);
  std::cout << num.load() << std::endl;                          // 3.1415927
  const std::vector<int> values = arr.to_vector();               // arr[:]
  for (std::size_t i = 0; i < values.size(); ++i) std::cout << (i ? ", " : "[") << values[i];
  std::cout << "]" << std::endl;                                 // [0, -1, -2, ..., -9]
  // [/snippet]
}
