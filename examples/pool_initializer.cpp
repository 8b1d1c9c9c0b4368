// Python's Pool(processes, initializer, initargs, maxtasksperchild): the initializer gives each
// worker its own state, and maxtasksperchild replaces workers after a few tasks each. The
// initializer and its arguments travel encoded, so the workers may be forked, spawned or made
// by the forkserver (the default here, main having called herd::init).
#include <herd/herd.hpp>

#include "main.hpp"

#include <cstdio>
#include <set>
#include <string>

#include <unistd.h>

namespace asio = boost::asio;

// [snippet:state]
std::string connection;  // per worker, set by the initializer

void open_database(const std::string& database) { connection = database + " (opened by " + std::to_string(::getpid()) + ")"; }

std::string query(int i) { return "query " + std::to_string(i) + " on " + connection; }
// [/snippet]

asio::awaitable<void> co_main(asio::any_io_executor ex, int, char**) {
  // [snippet:pool]
  herd::pool pool(ex, {.processes = 2,
                       .initializer = {open_database, std::string("inventory.db")},  // initializer, initargs
                       .max_tasks_per_child = 3});
  // [/snippet]
  std::set<std::string> connections;
  for (int i = 0; i < 12; ++i) {
    const std::string answer = co_await pool.async_apply(query, i);
    std::printf("%s\n", answer.c_str());
    connections.insert(answer.substr(answer.find(" on ") + 4));
  }
  std::printf("%zu workers served 12 queries, at most 3 each; restarts after deaths: %zu\n", connections.size(),
              pool.stats().worker_restarts);
}
