// Pipelines (issue 13): a three-stage pipeline of small items (ints from a range, squared in two
// worker processes, summed in the parent), items per second. Twin: bench/python/pipeline.py,
// the hand-written Process + Queue version of the Python tutorials. (The flagship word count is
// timed by bench/run.py through examples/word_count and bench/python/word_count.py.)
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <numeric>
#include <vector>

namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr int items = 2'000'000;

std::int64_t square(std::int64_t x) { return x * x; }

}  // namespace

int main(int argc, char** argv) {
  herd::init(argc, argv);
  asio::io_context io;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    std::vector<std::int64_t> input(items);
    std::iota(input.begin(), input.end(), 0);
    std::vector<double> rates;
    for (int trial = 0; trial < 3; ++trial) {
      herd::stage_options two;
      two.processes = 2;
      auto p = herd::from_range(io.get_executor(), input).map("square", square, two);
      std::int64_t sum = 0;
      const auto start = clock::now();
      co_await p.async_for_each([&sum](std::int64_t x) { sum += x; });
      rates.push_back(items / (micros_since(start) / 1e6));
      std::int64_t expected = 0;
      for (std::int64_t x : input) expected += x * x;
      if (sum != expected) std::abort();
    }
    report("herd_pipeline_3stage_items", median(rates), "items/s");
  }, [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
