// Spawn + await /bin/true: herd vs raw posix_spawn + waitpid and Boost.Process v2's default
// (fork-based) launcher, interleaved in rounds in one run.
//   bench_spawn [parent-MiB]   touches that much memory first (fork-based launchers slow down)
#include <herd/herd.hpp>

#include "harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detail/throw_error.hpp>  // before Process v2 (shared/STYLE.md §7)
#include <boost/process/v2/process.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <cstring>
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;
namespace asio = boost::asio;
using namespace herd_bench;

namespace {

constexpr int rounds = 5;
constexpr int per_round = 100;

void raw_spawn(std::vector<double>& samples) {
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) std::abort();
    int status;
    waitpid(pid, &status, 0);
    samples.push_back(micros_since(start));
  }
}

void process_v2(asio::io_context& io, std::vector<double>& samples) {
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    boost::process::v2::process p(io, "/bin/true", {});
    if (p.wait() != 0) std::abort();
    samples.push_back(micros_since(start));
  }
}

asio::awaitable<void> herd_child(asio::any_io_executor ex, std::vector<double>& samples) {
  const herd::command cmd("/bin/true");
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    herd::child c(ex, cmd);
    auto status = co_await c.async_wait();
    if (!status.success()) std::abort();
    samples.push_back(micros_since(start));
  }
}

asio::awaitable<void> herd_run(asio::any_io_executor ex, std::vector<double>& samples) {
  const herd::command cmd("/bin/true");
  for (int i = 0; i < per_round; ++i) {
    const auto start = clock::now();
    auto result = co_await herd::async_run(ex, cmd);
    if (!result.success()) std::abort();
    samples.push_back(micros_since(start));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t parent_mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 0;
  std::vector<char> ballast(parent_mib << 20);
  std::memset(ballast.data(), 1, ballast.size());
  const std::string suffix = parent_mib ? "_" + std::to_string(parent_mib) + "mib" : "";

  std::vector<double> raw, child, run, v2;
  asio::io_context io;
  for (int round = 0; round < rounds; ++round) {
    raw_spawn(raw);
    process_v2(io, v2);
    asio::co_spawn(io, herd_child(io.get_executor(), child), [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
    io.run();
    io.restart();
    asio::co_spawn(io, herd_run(io.get_executor(), run), [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
    io.run();
    io.restart();
  }
  report("raw_posix_spawn_waitpid" + suffix, median(raw), "us");
  report("herd_child_async_wait" + suffix, median(child), "us");
  report("herd_async_run_capture" + suffix, median(run), "us");
  report("boost_process_v2_wait" + suffix, median(v2), "us");
  report("herd_child_vs_raw" + suffix, median(child) / median(raw), "x");
}
