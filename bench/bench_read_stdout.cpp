// Reading 100 MiB of a program's stdout: herd::async_run's capture vs a raw read() loop from a
// 1 MiB pipe into one reused buffer (a ceiling: it keeps nothing), interleaved in rounds.
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;
namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr long long total = 100LL << 20;
constexpr int rounds = 5;
const std::string size_arg = std::to_string(total);

double raw_read() {
  const auto start = clock::now();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
  fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  char* argv[] = {const_cast<char*>(HERD_BENCH_PRODUCER), const_cast<char*>(size_arg.c_str()), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, HERD_BENCH_PRODUCER, &actions, nullptr, argv, environ) != 0) std::abort();
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  static char buffer[1 << 20];
  long long got = 0;
  for (;;) {
    const ssize_t n = read(fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    got += n;
  }
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  if (got != total) std::abort();
  return micros_since(start);
}

asio::awaitable<void> herd_read(asio::any_io_executor ex, std::vector<double>& samples) {
  const auto start = clock::now();
  auto result = co_await herd::async_run(ex, herd::command(HERD_BENCH_PRODUCER, size_arg));
  if (!result.success() || static_cast<long long>(result.std_out.size()) != total) std::abort();
  samples.push_back(micros_since(start));
}

double mb_per_s(double micros) { return static_cast<double>(total) / micros; }

}  // namespace

int main() {
  std::vector<double> raw, herd_samples;
  asio::io_context io;
  for (int round = 0; round < rounds; ++round) {
    raw.push_back(raw_read());
    asio::co_spawn(io, herd_read(io.get_executor(), herd_samples), [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
    io.run();
    io.restart();
  }
  report("raw_read_100mib_discard", mb_per_s(median(raw)), "MB/s");
  report("herd_async_run_capture_100mib", mb_per_s(median(herd_samples)), "MB/s");
}
