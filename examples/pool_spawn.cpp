// Python's `mp.set_start_method("spawn")` with a Pool: workers that are the program run again,
// with a clean memory, whose start costs the event loop the same whatever the parent's size.
#include <herd/herd.hpp>

#include <cstdio>
#include <set>
#include <vector>

#include <unistd.h>

int loaded = 0;  // set in the parent before the pool starts: a spawned worker does not have it

int square(int x) { return x * x; }
int what_the_worker_sees(int) { return loaded; }
int worker_pid(int) { return ::getpid(); }

// [snippet:spawn]
int main(int argc, char** argv) {
  herd::init(argc, argv);  // a spawned worker takes its role here and never returns
  loaded = 42;

  herd::pool pool({.processes = 2, .start_method = herd::start_method::spawn});
  std::vector<int> xs{1, 2, 3, 4};
  for (int y : pool.map(square, xs)) std::printf("%d ", y);
  std::printf("\nthe worker sees loaded = %d (the parent has %d)\n", pool.apply(what_the_worker_sees, 0), loaded);
  const std::vector<int> pids = pool.map(worker_pid, std::vector<int>(40), {.chunksize = 1});
  std::printf("%zu workers answered\n", std::set<int>(pids.begin(), pids.end()).size());
}
// [/snippet]
