// Python's Pipe example, both ways: the child sends [42, None, 'hello'], then answers the
// parent's numbers with their squares until the parent closes its end.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <optional>
#include <string>
#include <variant>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:pipe]
  using message = std::variant<int, std::tuple<int, std::optional<int>, std::string>>;
  auto [parent_end, child_end] = herd::make_pipe<message>(ex);
  auto child = herd::start(ex, [conn = child_end, unused = parent_end]() mutable {
    unused.close();  // the child's copy of the parent's end: without this, recv never sees "closed"
    conn.send(std::tuple{42, std::optional<int>{}, std::string("hello")});
    herd::error_code ec;
    for (auto m = conn.recv(ec); !ec; m = conn.recv(ec)) conn.send(std::get<int>(m) * std::get<int>(m));
  });
  child_end.close();  // the parent's copy of the child's end, likewise

  auto [number, nothing, text] = std::get<1>(co_await parent_end.async_recv());
  std::cout << "[" << number << ", " << (nothing ? "?" : "None") << ", '" << text << "']" << std::endl;
  for (int i = 1; i <= 4; ++i) {
    co_await parent_end.async_send(i);
    std::cout << i << " squared is " << std::get<int>(co_await parent_end.async_recv()) << std::endl;
  }
  parent_end.close();  // the child's recv now reports closed, and it returns
  std::cout << "child " << (co_await child.async_join()).to_string() << std::endl;
  // [/snippet]
}
