// Streams a running program: reads its output line by line as it arrives, feeds another one's
// stdin, and stops a third that would run forever.
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

void describe() {
  // [snippet:command]
  auto grep = herd::command("grep", "-c", "error")        // program, then its arguments
                  .std_in(herd::stdio::file("app.log"))  // stdin from a file
                  .env("LC_ALL", "C")                      // add or override a variable
                  .env_remove("LANG")                      // or remove one
                  .current_dir("/var/log");                // run there
  // [/snippet]
  std::cout << "a command is a value: " << grep.to_string() << "\n";
}

asio::awaitable<void> stream(asio::any_io_executor ex) {
  // [snippet:read-lines]
  // Lines arrive while the program still runs (Python: asyncio's proc.stdout.readline()).
  herd::child ticker(ex, herd::command("sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.05; done")
                             .std_out(herd::stdio::pipe()));
  for (;;) {
    auto [ec, line] = co_await ticker.std_out().async_read_line(asio::as_tuple(asio::deferred));
    if (ec) break;  // asio::error::eof once the program closed its stdout
    std::cout << "got: " << line << "\n";
  }
  herd::exit_status status = co_await ticker.async_wait();
  std::cout << "ticker " << status.to_string() << "\n";
  // [/snippet]

  // [snippet:write-stdin]
  // Feed a filter and read its answer (Python: proc.communicate(input)).
  herd::child sorter(ex, herd::command("sort").std_in(herd::stdio::pipe()).std_out(herd::stdio::pipe()));
  co_await sorter.std_in().async_write("pear\napple\nfig\n");
  sorter.std_in().close();  // sort answers at end of input
  std::cout << "sorted: " << co_await sorter.std_out().async_read_all();
  co_await sorter.async_wait();
  // [/snippet]

  // [snippet:stop]
  // terminate() follows the command's stop policy: SIGTERM to the process group, a grace
  // period, then SIGKILL. async_stop() does the same and waits for the final status.
  herd::child forever(ex, herd::command("sleep", "infinity").stop({true, SIGTERM, std::chrono::seconds(1)}));
  herd::exit_status stopped = co_await forever.async_stop();
  std::cout << "sleep infinity " << stopped.to_string() << "\n";
  // [/snippet]
}

int main() {
  describe();
  asio::io_context io;
  asio::co_spawn(io, stream(io.get_executor()), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
