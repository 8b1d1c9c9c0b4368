// A child prints its pid and its parent's; the parent prints its own (Python: os.getpid()).
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>

namespace asio = boost::asio;

// [snippet:pids]
void show_ids(const char* who) {
  std::cout << who << ": pid " << herd::this_process::pid() << ", parent " << herd::this_process::ppid()
            << ", name " << herd::this_process::name() << std::endl;
}

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  show_ids("parent");
  auto child = herd::start(ex, show_ids, "child");  // Process(target=show_ids, args=("child",))
  co_await child.async_join();                      // p.join()
  std::cout << "child " << child.pid() << " " << child.status()->to_string() << std::endl;
}
// [/snippet]
