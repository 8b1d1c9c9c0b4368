// join() orders work: the first mail is sent before the second.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <unistd.h>

namespace asio = boost::asio;

void send_mail(const char* which, int delay_ms) {
  ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
  std::cout << "send the " << which << " mail" << std::endl;
}

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:join]
  // The first mail is slower to write, yet it goes first: the parent waits for it.
  auto first = herd::start(ex, send_mail, "first", 200);
  co_await first.async_join();
  auto second = herd::start(ex, send_mail, "second", 0);
  co_await second.async_join();
  // [/snippet]
}
