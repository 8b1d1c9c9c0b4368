// Python's `mp.get_context("forkserver").Process(target=f, args=(...))`: function children that
// are not copies of the parent. Their start costs the event loop the same whatever the parent's
// size; what they run travels encoded, so it is a function (or a captureless lambda, or a plain
// struct with run()) and its arguments are values herd::codec sends.
#include <herd/herd.hpp>

#include "main.hpp"

#include <cstdio>
#include <string>

#include <unistd.h>

namespace asio = boost::asio;

int loaded = 0;  // set by the parent: a forked child has it, the others start from the program's 0

// [snippet:task]
std::string describe(std::string who, int n) {
  return who + " got " + std::to_string(n) + ", sees loaded = " + std::to_string(loaded);
}

// Python's Process subclass with attributes: its fields travel with it.
struct countdown {
  int from = 0;
  std::string run() const {
    std::string text;
    for (int i = from; i > 0; --i) text += std::to_string(i) + " ";
    return text + "go";
  }
};
// [/snippet]

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  loaded = 42;
  // [snippet:start]
  for (const auto method : {herd::start_method::fork, herd::start_method::spawn, herd::start_method::forkserver}) {
    herd::process_options options;
    options.start_method = method;
    auto child = herd::start(ex, options, describe, "a child", 7);
    std::printf("%s\n", (co_await child.async_result()).c_str());
  }
  herd::process_options options;
  options.start_method = herd::start_method::forkserver;
  auto counter = herd::start(ex, options, countdown{3});
  std::printf("%s\n", (co_await counter.async_result()).c_str());

  // A lambda's captures cannot travel (C++20 cannot list them): refused, with why.
  const int captured = 1;
  try {
    herd::start(ex, options, [captured] { return captured; });
  } catch (const boost::system::system_error& e) {
    std::printf("refused: %s\n", e.code() == herd::errc::invalid_argument ? "invalid_argument" : "?");
  }
  // [/snippet]
}
