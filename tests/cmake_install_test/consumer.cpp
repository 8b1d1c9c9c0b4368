// Uses the installed herd: runs /bin/true and prints how it ended.
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>

int main() {
  boost::asio::io_context io;
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        auto result = co_await herd::async_run(io.get_executor(), herd::command("true"));
        std::cout << "consumer ran: " << result.status.to_string() << "\n";
      },
      boost::asio::detached);
  io.run();
}
