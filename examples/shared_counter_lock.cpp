// Python's lock tutorial: two processes add 1 and 3 to a shared integer five times each. Without
// a lock their read-modify-write steps interleave and updates are lost; with the lock held around
// each process's five updates, they come out in one piece each and the total is 20.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <unistd.h>

namespace asio = boost::asio;

// [snippet:race]
// Reads, pauses (so that the other process runs in between), writes: a lost update if it does.
void add_slowly(herd::shared_value<int>& total, int amount) {
  const int seen = total.load();
  ::usleep(10'000);
  total.store(seen + amount);
}

asio::awaitable<void> without_lock(asio::any_io_executor ex) {
  herd::shared_value<int> total(ex, 0);
  auto one = herd::start(ex, [total]() mutable { for (int i = 0; i < 5; ++i) add_slowly(total, 1); });
  auto three = herd::start(ex, [total]() mutable { for (int i = 0; i < 5; ++i) add_slowly(total, 3); });
  co_await one.async_join();
  co_await three.async_join();
  std::cout << "without a lock: " << total.load() << " (20 if no update was lost)" << std::endl;
}
// [/snippet]

// [snippet:locked]
asio::awaitable<void> with_lock(asio::any_io_executor ex) {
  herd::shared_value<int> total(ex, 0);
  herd::lock lock(ex);
  auto adder = [total, lock](int amount) mutable {
    herd::lock_guard held(lock);  // the five updates of one process in one piece
    for (int i = 0; i < 5; ++i) {
      add_slowly(total, amount);
      std::cout << "+" << amount << " -> " << total.load() << std::endl;
    }
  };
  auto one = herd::start(ex, adder, 1);
  auto three = herd::start(ex, adder, 3);
  co_await one.async_join();
  co_await three.async_join();
  std::cout << "with a lock: " << total.load() << std::endl;
}
// [/snippet]

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  co_await without_lock(ex);
  co_await with_lock(ex);
}
