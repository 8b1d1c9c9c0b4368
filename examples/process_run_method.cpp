// Python's "subclass Process and override run()": any class with a run() member.
#include <herd/herd.hpp>

#include "main.hpp"

#include <iostream>
#include <string>

namespace asio = boost::asio;

// [snippet:run]
class downloader {
 public:
  downloader(std::string url, int retries) : url_(std::move(url)), retries_(retries) {}

  std::string run() {  // runs in the child
    return "fetched " + url_ + " with " + std::to_string(retries_) + " retries in " +
           herd::this_process::name();
  }

 private:
  std::string url_;
  int retries_;
};

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  auto p = herd::start(ex, herd::process_options{.name = "downloader-1"}, downloader("https://example.org", 3));
  std::cout << co_await p.async_result() << std::endl;
}
// [/snippet]
