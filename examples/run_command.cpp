// Runs one program from a coroutine and prints what it wrote: the smallest herd program.
// [snippet:readme]
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> show_kernel(asio::any_io_executor ex) {
  // Like Python's subprocess.run(["uname", "-sr"], capture_output=True), but awaited:
  // the event loop keeps serving everything else while uname runs.
  herd::run_result result = co_await herd::async_run(ex, herd::command("uname", "-sr"));
  std::cout << "uname said: " << result.std_out;
  std::cout << "uname " << result.status.to_string() << "\n";

  // A program that takes too long is stopped (SIGTERM, grace period, SIGKILL).
  herd::run_options options;
  options.timeout = std::chrono::milliseconds(200);
  auto [ec, slow] = co_await herd::async_run(ex, herd::command("sleep", "10"), options,
                                             asio::as_tuple(asio::deferred));
  std::cout << "sleep 10: " << ec.message() << ", " << slow.status.to_string() << "\n";
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, show_kernel(io.get_executor()), asio::detached);
  io.run();
}
// [/snippet]
