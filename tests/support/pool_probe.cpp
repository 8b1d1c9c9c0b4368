// A parent for the start-method fault tests (tests/start_methods.cpp), run as a program:
//   pool_probe <fork|spawn|forkserver> orphans
//     makes a pool of two, prints "workers A B server S" (S: the forkserver, 0 if none) and
//     waits to be SIGKILLed: its workers (and its forkserver) must die with it.
//   pool_probe <fork|spawn|forkserver> busy <starts>
//     while one thread holds a mutex and another allocates without pause, starts `starts`
//     workers one after another (a pool of one, recycled after every task), then `starts`
//     function children (herd::start) that take the same mutex and allocate, and prints
//     "started N children M": a spawned or forkserver child never inherits the held locks.
#include <herd/pool.hpp>
#include <herd/process.hpp>

#include <boost/asio/io_context.hpp>

#include "detail/spawn_process.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

int my_pid(int) { return ::getpid(); }

std::mutex held;  // held by a thread of the parent most of the time

// In a child: a copy of the mutex as the parent's thread held it would never be released.
int lock_and_allocate(int i) {
  std::lock_guard lock(held);
  std::vector<char> block(4096 + static_cast<std::size_t>(i));
  return ::getpid() + static_cast<int>(block.size() - block.size());
}

herd::start_method method_named(std::string_view name) {
  return name == "spawn" ? herd::start_method::spawn
         : name == "forkserver" ? herd::start_method::forkserver
                                : herd::start_method::fork;
}

}  // namespace

int main(int argc, char** argv) {
  herd::init(argc, argv);
  if (argc < 3) return 2;
  const herd::start_method method = method_named(argv[1]);
  const std::string_view mode = argv[2];
  if (mode == "orphans") {
    herd::pool pool({.processes = 2, .start_method = method});
    std::set<int> workers;
    while (workers.size() < 2)
      for (int pid : pool.map(my_pid, std::vector<int>(16), {.chunksize = 1})) workers.insert(pid);
    std::printf("workers %d %d server %d\n", *workers.begin(), *workers.rbegin(), herd::detail::forkserver_pid());
    std::fflush(stdout);
    for (;;) ::pause();
  }
  if (mode == "busy" && argc == 4) {
    const int starts = std::atoi(argv[3]);
    std::atomic<bool> done{false};
    std::thread holder([&] {
      while (!done) {
        std::lock_guard lock(held);
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
    std::thread allocator([&] {
      while (!done) {
        std::vector<std::vector<char>> blocks;
        for (int i = 0; i < 64; ++i) blocks.emplace_back(1024 + 64 * i);
      }
    });
    int started = 0;
    {
      herd::pool pool({.processes = 1, .start_method = method, .max_tasks_per_child = 1});
      std::set<int> seen;
      for (int i = 0; i < starts; ++i) seen.insert(pool.apply(my_pid, i));
      started = static_cast<int>(seen.size());
    }
    std::set<int> children;
    {
      boost::asio::io_context io;
      herd::process_options options;
      options.start_method = method;
      for (int i = 0; i < starts; ++i) children.insert(herd::start(io.get_executor(), options, lock_and_allocate, i).result());
    }
    done = true;
    holder.join();
    allocator.join();
    std::printf("started %d children %zu\n", started, children.size());
    return 0;
  }
  return 2;
}
