// Python's first Queue example: a child puts [42, None, 'hello'], the parent gets it.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <optional>
#include <string>

namespace asio = boost::asio;

// [snippet:message]
struct greeting {  // Python's [42, None, 'hello'], with a type for each field
  int number;
  std::optional<int> nothing;
  std::string text;
};
// [/snippet]

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:put_get]
  herd::queue<greeting> q(ex);
  auto child = herd::start(ex, [q]() mutable { q.put({42, std::nullopt, "hello"}); });
  greeting g = co_await q.async_get();  // the event loop stays free while it waits
  std::cout << "[" << g.number << ", " << (g.nothing ? std::to_string(*g.nothing) : "None") << ", '" << g.text
            << "']" << std::endl;
  co_await child.async_join();
  // [/snippet]
}
