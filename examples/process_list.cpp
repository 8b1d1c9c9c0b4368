// Five children kept in a list and joined one by one, each reporting its name.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <list>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  std::list<herd::process<std::string>> workers;
  for (int i = 1; i <= 5; ++i) {
    herd::process_options options;
    options.name = "worker-" + std::to_string(i);
    workers.push_back(herd::start(ex, options, [] { return herd::this_process::name() + " done"; }));
  }
  for (auto& w : workers) std::cout << co_await w.async_result() << std::endl;
  std::cout << "all " << workers.size() << " joined" << std::endl;
}
