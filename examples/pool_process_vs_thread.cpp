// The seed's "process vs thread" job: sum(i + i^2 + i^3) over a range split in two, done
// serially, by two threads and by two pool workers, with the time each took.
#include <herd/herd.hpp>

#include "main.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

namespace asio = boost::asio;

// [snippet:job]
double job(long long from, long long to) {
  double sum = 0;
  for (long long i = from; i < to; ++i) {
    const double x = static_cast<double>(i);
    sum += x + x * x + x * x * x;
  }
  return sum;
}
// [/snippet]

template <typename Work>
double timed(const char* what, Work work) {
  const auto start = std::chrono::steady_clock::now();
  const double sum = work();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("%-13s sum %.6e in %.1f ms\n", what, sum, ms);
  return sum;
}

asio::awaitable<void> co_main(asio::any_io_executor ex, int argc, char** argv) {
  const long long n = argc > 1 ? std::atoll(argv[1]) : 100'000'000;
  const double serial = timed("serial:", [&] { return job(0, n); });
  const double threads = timed("two threads:", [&] {
    double a = 0, b = 0;
    std::thread t([&] { a = job(0, n / 2); });
    b = job(n / 2, n);
    t.join();
    return a + b;
  });
  // [snippet:pool]
  herd::pool pool(ex, {.processes = 2});
  co_await pool.async_apply(job, 0, 1);  // the workers are up and warm
  const auto start = std::chrono::steady_clock::now();
  auto first = pool.submit(job, 0LL, n / 2);
  auto second = pool.submit(job, n / 2, n);
  const double processes = co_await first.async_get() + co_await second.async_get();
  // [/snippet]
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("%-13s sum %.6e in %.1f ms\n", "two workers:", processes, ms);
  const bool same = threads / serial > 0.999999 && processes / serial > 0.999999 && processes / serial < 1.000001;
  std::printf("the three sums agree: %s\n", same ? "yes" : "no");
}
