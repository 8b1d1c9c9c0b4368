// A supervised service for tests/supervisor.cpp, stopped by signals through herd::shutdown.
//   supervisor_probe orderly   "db" (a function child) and "web" (a program with a grandchild:
//                              sh -c 'sleep 1000 & wait'); SIGTERM stops web, then db; exit 0
//   supervisor_probe stubborn  and "stubborn", a child that ignores SIGTERM (30 s grace): the
//                              first SIGTERM waits on it, a second forces; exit 143
// It prints every event, then "tree <pid> <pid>…" once all children run.
#include <herd/herd.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include <unistd.h>

namespace asio = boost::asio;

namespace {
[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}
// Ready once SIGTERM is ignored: the tree is printed only then.
[[noreturn]] void ignore_sigterm_forever() {
  std::signal(SIGTERM, SIG_IGN);
  herd::this_process::notify_ready();
  for (;;) ::pause();
}
void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}
}  // namespace

int main(int argc, char** argv) {
  herd::init(argc, argv);
  if (argc != 2) return 2;
  const std::string_view mode = argv[1];
  asio::io_context io;
  herd::shutdown stop(io);
  std::vector<herd::child_spec> children{
      herd::child_spec::function("db", sleep_forever),
      herd::child_spec::program("web", herd::command("sh", {"-c", "sleep 1000 & wait"})),
  };
  if (mode == "stubborn")
    children.push_back(herd::child_spec::function("stubborn", ignore_sigterm_forever)
                           .stop({false, SIGTERM, std::chrono::seconds(30)})
                           .await_ready());
  const std::size_t count = children.size();
  std::size_t started = 0;
  herd::supervisor* watched = nullptr;
  herd::supervisor_options options{.name = "probe"};
  options.on_event = [&](const herd::supervisor_event& e) {
    say(herd::to_string(e));
    if (e.what != herd::supervisor_event::kind::started || ++started != count) return;
    std::string tree = "tree";
    for (const auto& child : watched->which_children()) tree += " " + std::to_string(child.pid);
    say(tree);
  };
  herd::supervisor sup(io.get_executor(), std::move(children), options);
  watched = &sup;
  stop.add(sup);
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    co_await sup.async_run();
    say("supervisor over");
  }, asio::detached);
  io.run();
  say("loop ended, exit code " + std::to_string(stop.exit_code()));
  return stop.exit_code();
}
