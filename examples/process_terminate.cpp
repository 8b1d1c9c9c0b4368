// A child running an infinite loop, terminated by the parent.
#include <herd/herd.hpp>

#include "main.hpp"

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:terminate]
  auto spinner = herd::start(ex, [] {
    std::atomic<unsigned long> spins{0};
    for (;;) spins.fetch_add(1, std::memory_order_relaxed);  // busy forever
  });
  std::cout << "alive: " << std::boolalpha << spinner.is_alive() << std::endl;
  asio::steady_timer timer(ex, 200ms);
  co_await timer.async_wait(asio::deferred);
  spinner.terminate();  // SIGTERM to its group, SIGKILL after the grace period if need be
  auto status = co_await spinner.async_join();
  std::cout << "alive: " << spinner.is_alive() << ", exit code " << *spinner.exit_code() << " ("
            << status.to_string() << ")" << std::endl;
  // [/snippet]
}
