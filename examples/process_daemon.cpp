// A daemon prints a heartbeat while a non-daemon child works; the daemon ends with the parent.
//   process_daemon [heartbeat-ms work-ms]     (default: every second, for three seconds)
#include <herd/herd.hpp>

#include "main.hpp"

#include <cstdlib>
#include <iostream>
#include <unistd.h>

namespace asio = boost::asio;

// [snippet:daemon]
[[noreturn]] void heartbeat(int every_ms) {
  for (int beat = 1;; ++beat) {
    std::cout << "heartbeat " << beat << std::endl;
    ::usleep(static_cast<useconds_t>(every_ms) * 1000);
  }
}

void work(int ms) {
  ::usleep(static_cast<useconds_t>(ms) * 1000);
  std::cout << "work done" << std::endl;
}

asio::awaitable<void> co_main(asio::any_io_executor ex, int argc, char** argv) {
  const int every = argc > 2 ? std::atoi(argv[1]) : 1000;
  const int duration = argc > 2 ? std::atoi(argv[2]) : 3000;

  auto daemon = herd::start(ex, herd::process_options{.name = "heartbeat", .daemon = true}, heartbeat, every);
  auto worker = herd::start(ex, work, duration);
  co_await worker.async_join();
  std::cout << "parent exits; daemon " << daemon.name() << " goes with it" << std::endl;
  daemon.detach();  // like Python: a daemon runs until its parent exits, then herd stops it
}
// [/snippet]
