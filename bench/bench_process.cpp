// Start + join of a function child: herd::start vs raw fork/_exit/waitpid, interleaved in rounds.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr int rounds = 5;
constexpr int per_round = 100;

void noop() {}

void raw_fork(std::vector<double>& samples) {
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status;
    ::waitpid(pid, &status, 0);
    samples.push_back(micros_since(start));
  }
}

asio::awaitable<void> herd_join(asio::any_io_executor ex, std::vector<double>& samples) {
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    auto p = herd::start(ex, noop);
    auto status = co_await p.async_join();
    if (!status.success()) std::abort();
    samples.push_back(micros_since(start));
  }
}

asio::awaitable<void> herd_result(asio::any_io_executor ex, std::vector<double>& samples) {
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    auto p = herd::start(ex, [](int x) { return x + 1; }, i);
    if (co_await p.async_result() != i + 1) std::abort();
    samples.push_back(micros_since(start));
  }
}

}  // namespace

int main() {
  std::vector<double> raw, joined, results;
  asio::io_context io;
  auto run = [&](asio::awaitable<void> work) {
    asio::co_spawn(io, std::move(work), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    io.run();
    io.restart();
  };
  for (int round = 0; round < rounds; ++round) {
    raw_fork(raw);
    run(herd_join(io.get_executor(), joined));
    run(herd_result(io.get_executor(), results));
  }
  report("raw_fork_exit_waitpid", median(raw), "us");
  report("herd_start_join", median(joined), "us");
  report("herd_start_result", median(results), "us");
  report("herd_start_join_vs_raw", median(joined) / median(raw), "x");
}
