// The reader/writer queue example (examples/queue_reader_writer.cpp) as a two-stage pipeline:
// the writer stage runs in a worker process and hands each letter on; the reader prints them.
// End of stream replaces the terminate() of the hand-written version: the reader stops when the
// writer is done, and no process is left.
#include <herd/herd.hpp>

#include "main.hpp"

#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;

namespace {

// In the writer's process: what it writes for one letter.
std::string write_letter(std::string letter) { return letter + " (written by a process of its own)"; }

}  // namespace

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:pipeline]
  const std::vector<std::string> letters{"A", "B", "C", "D"};
  herd::stage_options one_writer;
  one_writer.processes = 1;
  auto written = herd::from_range(ex, letters).map("writer", write_letter, one_writer);
  const herd::pipeline_summary summary = co_await written.async_for_each(
      [](const std::string& line) { std::printf("reader got %s\n", line.c_str()); }, "reader");
  std::printf("reader saw %zu letters; the writer's process is gone\n", summary.stages.back().items_out);
  // [/snippet]
}
