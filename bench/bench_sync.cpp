// Locks and atomics across processes: 2 child processes x 100,000 increments of a shared counter,
// under a herd::lock (a plain int updated while holding it) and with shared_value::fetch_add;
// and uncontended acquire + release in one process. Operations per second, median of `rounds`
// runs, variants interleaved; the time includes starting and joining the two children, as in
// the Python twin (bench/python/sync.py).
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

template <typename Work>
double rate_of(const boost::asio::any_io_executor& ex, Work work) {
  const auto start = clock::now();
  std::vector<herd::process<void>> children;
  for (int w = 0; w < workers; ++w) children.push_back(herd::start(ex, work));
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
