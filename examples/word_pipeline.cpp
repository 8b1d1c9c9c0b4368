// herd's flagship example (for now): a word-frequency pipeline of real programs,
//   tr -cs A-Za-z '\n' | tr A-Z a-z | sort | uniq -c | sort -rn
// run from one event loop while a heartbeat timer keeps ticking and a stuck program is
// stopped on timeout. The bytes between the stages never pass through this process.
//
// usage: word_pipeline [text-file]     (without a file it counts a built-in text)
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>
#include <sstream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

const char* const built_in_text = R"(
The herd moves together, yet every animal walks on its own legs. A process is the same:
it runs alone, in its own memory, and the herd is only as strong as the way its members
call to each other. Send the work out, let each one carry its share, and wait for them
without standing still. When one falls, the herd notices; when one wanders, the herd
calls it back; and when the day is over, the herd comes home, every one of them.
)";

// [snippet:pipeline]
asio::awaitable<void> count_words(asio::any_io_executor ex, herd::stdio input) {
  auto words = herd::command("tr", "-cs", "A-Za-z", "\n").std_in(std::move(input)) |
               herd::command("tr", "A-Z", "a-z") | herd::command("sort") | herd::command("uniq", "-c") |
               herd::command("sort", "-rn");
  herd::run_pipeline_result result = co_await herd::async_run_pipeline(ex, std::move(words));

  std::istringstream counts(result.std_out);
  std::string line;
  for (int shown = 0; shown < 5 && std::getline(counts, line); ++shown) std::cout << "  " << line << "\n";
  std::cout << "pipeline (" << result.statuses.size() << " programs): " << result.status().to_string() << "\n";
}
// [/snippet]

// [snippet:timeout]
asio::awaitable<void> stop_a_stuck_program(asio::any_io_executor ex) {
  herd::run_options options;
  options.timeout = 300ms;
  auto [ec, result] = co_await herd::async_run(ex, herd::command("sleep", "30"), options,
                                               asio::as_tuple(asio::deferred));
  std::cout << "sleep 30: " << ec.message() << "; " << result.status.to_string() << "\n";
}
// [/snippet]

// Ticks until cancelled: the proof that nothing above blocks the event loop.
asio::awaitable<void> heartbeat(asio::any_io_executor ex) {
  asio::steady_timer timer(ex);
  for (int tick = 1;; ++tick) {
    timer.expires_after(100ms);
    co_await timer.async_wait(asio::deferred);
    std::cout << "[tick " << tick << "] the event loop is free\n";
  }
}

asio::awaitable<void> flagship(asio::any_io_executor ex, herd::stdio input) {
  using namespace asio::experimental::awaitable_operators;
  std::cout << "most frequent words:\n";
  // Both jobs at once; the heartbeat is cancelled when they are done.
  co_await ((count_words(ex, std::move(input)) && stop_a_stuck_program(ex)) || heartbeat(ex));
}

}  // namespace

int main(int argc, char** argv) {
  herd::stdio input = argc > 1 ? herd::stdio::file(argv[1]) : herd::stdio::bytes(built_in_text);
  asio::io_context io;
  asio::co_spawn(io, flagship(io.get_executor(), std::move(input)), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
