// A writer process puts A, B, C, D; a reader process prints them and is terminated at the end.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:reader_writer]
  herd::joinable_queue<std::string> q(ex);
  auto reader = herd::start(ex, [q]() mutable {
    for (;;) {  // reads forever: the parent ends it
      std::cout << "reader got " << q.get() << std::endl;
      q.task_done();
    }
  });
  auto writer = herd::start(ex, [q]() mutable {
    for (const char* letter : {"A", "B", "C", "D"}) q.put(letter);
  });
  co_await writer.async_join();
  co_await q.async_join();  // every letter printed
  reader.terminate();
  auto status = co_await reader.async_join();
  std::cout << "reader: " << status.to_string() << std::endl;
  // [/snippet]
}
