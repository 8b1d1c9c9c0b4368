// A server-like program for tests/shutdown.cpp: a pool with a task in flight and a registered
// "server" step, stopped by signals.
//   shutdown_probe drain     a 300 ms task; SIGTERM: the server step, then the pool drains
//                            (the task finishes), exit 0
//   shutdown_probe force     a 30 s task; the first SIGTERM begins the drain, a second forces
//   shutdown_probe deadline  a 30 s task, a 300 ms deadline: forced when it passes
// It prints "ready <worker pid>" once the task runs, then what happens.
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <string_view>
#include <thread>

#include <unistd.h>

namespace asio = boost::asio;

namespace {
int sleep_then_pid(int ms) {
  std::printf("ready %d\n", ::getpid());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ::getpid();
}
}  // namespace

int main(int argc, char** argv) {
  herd::init(argc, argv);
  if (argc != 2) return 2;
  const std::string_view mode = argv[1];
  asio::io_context io;
  herd::shutdown_options options;
  if (mode == "deadline") options.deadline = std::chrono::milliseconds(300);
  herd::shutdown stop(io, options);
  herd::pool pool(io.get_executor(), {.processes = 1, .stop = herd::stop_policy::immediate()});
  stop.add(pool);
  stop.on_stop("server", []() -> asio::awaitable<void> {
    std::printf("server stops accepting\n");
    std::fflush(stdout);
    co_return;
  });
  const int task_ms = mode == "drain" ? 300 : 30000;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    const int pid = co_await pool.async_apply(sleep_then_pid, task_ms);
    std::printf("task done in %d\n", pid);
    std::fflush(stdout);
  }, asio::detached);
  io.run();
  std::printf("loop ended, signal %d, exit code %d\n", stop.signal(), stop.exit_code());
  std::fflush(stdout);
  return stop.exit_code();
}
