// Locks and atomics across processes: 2 child processes x 100,000 increments of a shared counter,
// under a herd::lock (a plain int updated while holding it) and with shared_value::fetch_add;
// and uncontended acquire + release in one process. Operations per second, median of `rounds`
// runs, variants interleaved; timed from the moment both children are told to go until both are
// joined, as in the Python twin (bench/python/sync.py).
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <vector>

using namespace herd_bench;

namespace {

constexpr int rounds = 5;
constexpr int workers = 2;
constexpr int increments = 100'000;
constexpr int uncontended = 2'000'000;

// Both workers start, wait for the word, and run at once: the time is from the word to both
// joined, so the two contend for the whole run (100,000 atomic increments take about as long as
// starting a child, so without it they could run one after the other).
template <typename Work>
double rate_of(const boost::asio::any_io_executor& ex, Work work) {
  herd::event go(ex);
  herd::semaphore ready(ex, 0);
  std::vector<herd::process<void>> children;
  for (int w = 0; w < workers; ++w)
    children.push_back(herd::start(ex, [go, ready, work]() mutable {
      ready.release();
      go.wait();
      work();
    }));
  for (int w = 0; w < workers; ++w) ready.acquire();
  const auto start = clock::now();
  go.set();
  for (auto& c : children)
    if (!c.join().success()) std::abort();
  return workers * increments / (micros_since(start) / 1e6);
}

}  // namespace

int main() {
  boost::asio::io_context io;
  const auto ex = io.get_executor();
  std::vector<double> locked, atomic, single;
  for (int round = 0; round < rounds; ++round) {
    herd::lock l(ex);
    herd::shared_value<long> total(ex, 0);
    locked.push_back(rate_of(ex, [l, total]() mutable {
      for (int i = 0; i < increments; ++i) {
        l.acquire();
        *total.get() += 1;
        l.release();
      }
    }));
    if (total.load() != workers * increments) std::abort();

    herd::shared_value<long> counter(ex, 0);
    atomic.push_back(rate_of(ex, [counter]() mutable {
      for (int i = 0; i < increments; ++i) counter.fetch_add(1);
    }));
    if (counter.load() != workers * increments) std::abort();

    const auto start = clock::now();
    for (int i = 0; i < uncontended; ++i) {
      l.acquire();
      l.release();
    }
    single.push_back(uncontended / (micros_since(start) / 1e6));
  }
  report("herd_lock_2x100k", median(locked), "ops/s");
  report("herd_atomic_2x100k", median(atomic), "ops/s");
  report("herd_lock_uncontended", median(single), "ops/s");
}
