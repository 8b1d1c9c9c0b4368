// herd::supervisor with real children: strategies, restart policies, intensity, backoff,
// heartbeats, readiness, nesting, programs beside functions, signals, and what is left after.
#include <herd/supervisor.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/child.hpp>
#include <herd/command.hpp>
#include <herd/start_method.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <csignal>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd::child_spec;
using herd::child_state;
using herd::supervisor_event;
using kind = herd::supervisor_event::kind;

namespace {

// ----- what the children run -----

[[noreturn]] void sleep_forever() {
  for (;;) ::pause();
}
[[noreturn]] void exit_with(int code) { ::_exit(code); }
[[noreturn]] void beat_forever() {
  for (;;) {
    herd::this_process::heartbeat();
    ::usleep(10000);
  }
}
// Beats `beats` times, 10 ms apart, then hangs.
[[noreturn]] void beat_then_hang(int beats) {
  for (int k = 0; k < beats; ++k) {
    herd::this_process::heartbeat();
    ::usleep(10000);
  }
  sleep_forever();
}
[[noreturn]] void ready_after(int ms) {
  ::usleep(static_cast<useconds_t>(ms) * 1000);
  herd::this_process::notify_ready();
  sleep_forever();
}
// Says it is ready once SIGTERM is ignored: without await_ready() a stop could come first.
[[noreturn]] void ignore_sigterm_forever() {
  std::signal(SIGTERM, SIG_IGN);
  herd::this_process::notify_ready();
  sleep_forever();
}
// What heartbeat() says outside supervision.
bool heartbeat_unsupervised() { return herd::this_process::heartbeat(); }
[[noreturn]] void ready_then_beat() {
  herd::this_process::notify_ready();
  beat_forever();
}

// ----- watching a supervisor -----

struct event_log {
  struct entry {
    supervisor_event event;
    std::chrono::steady_clock::time_point at;
  };
  std::vector<entry> entries;

  std::function<void(const supervisor_event&)> observer() {
    return [this](const supervisor_event& e) { entries.push_back({e, std::chrono::steady_clock::now()}); };
  }
  std::size_t count(kind what, const std::string& child) const {
    std::size_t n = 0;
    for (const auto& e : entries)
      if (e.event.what == what && e.event.child == child) ++n;
    return n;
  }
  // "started a, started b, exited b, …" for the kinds asked for.
  std::string sequence(std::initializer_list<kind> kinds) const {
    std::string text;
    for (const auto& e : entries) {
      if (std::find(kinds.begin(), kinds.end(), e.event.what) == kinds.end()) continue;
      if (!text.empty()) text += ", ";
      text += word(e.event.what) + " " + (e.event.child.empty() ? e.event.supervisor : e.event.child);
    }
    return text;
  }
  static std::string word(kind what) {
    switch (what) {
      case kind::started: return "started";
      case kind::exited: return "exited";
      case kind::restarting: return "restarting";
      case kind::heartbeat_missed: return "missed";
      case kind::gave_up: return "gave up";
      case kind::stopped: return "stopped";
    }
    return "?";
  }
  void clear() { entries.clear(); }
};

asio::awaitable<void> sleep_for(asio::any_io_executor ex, std::chrono::milliseconds d) {
  asio::steady_timer t(ex, d);
  co_await t.async_wait(asio::deferred);
}

// Waits (up to 20 s) until `ready()`; true if it came.
asio::awaitable<bool> until(asio::any_io_executor ex, std::function<bool()> ready) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    co_await sleep_for(ex, 5ms);
  }
  co_return true;
}

bool all_running(const herd::supervisor& s) {
  for (const auto& c : s.which_children())
    if (c.state != child_state::running) return false;
  return true;
}

std::vector<int> pids_of(const herd::supervisor& s) {
  std::vector<int> pids;
  for (const auto& c : s.which_children()) pids.push_back(c.pid);
  return pids;
}

const herd::supervised_child_info& info(const std::vector<herd::supervised_child_info>& all, const std::string& id) {
  for (const auto& c : all)
    if (c.id == id) return c;
  throw std::runtime_error("no child " + id);
}

// The processes whose parent is `parent`.
std::vector<int> children_of(int parent) {
  std::vector<int> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (herd_test::read_stat(std::stoi(name)).ppid == parent) found.push_back(std::stoi(name));
  }
  return found;
}

// Runs the supervisor in the background; the returned flag and error tell how it ended.
struct running {
  std::shared_ptr<bool> over = std::make_shared<bool>(false);
  std::shared_ptr<std::exception_ptr> error = std::make_shared<std::exception_ptr>();
};
running start(asio::any_io_executor ex, herd::supervisor& s) {
  running r;
  asio::co_spawn(ex, s.async_run(), [r](std::exception_ptr e) {
    *r.error = e;
    *r.over = true;
  });
  return r;
}

herd::supervisor_options quick(std::string name, event_log& log,
                               herd::supervision_strategy strategy = herd::supervision_strategy::one_for_one) {
  herd::supervisor_options o;
  o.name = std::move(name);
  o.strategy = strategy;
  o.intensity = {20, 10s};
  o.backoff = {10ms, 100ms, 0.0, 5s};
  o.on_event = log.observer();
  return o;
}

// The children of a supervisor, without a braced list: g++ 12 mishandles an initializer_list's
// temporaries in a coroutine (destroyed twice).
template <typename... Specs>
std::vector<child_spec> specs(Specs&&... each) {
  std::vector<child_spec> all;
  all.reserve(sizeof...(each));
  (all.push_back(std::forward<Specs>(each)), ...);
  return all;
}

child_spec sleeper(std::string id) {
  return child_spec::function(std::move(id), sleep_forever).stop({false, SIGTERM, 2s});
}

// A program whose child stays in its process group.
child_spec sh_with_grandchild(std::string id) {
  return child_spec::program(std::move(id), herd::command("sh", {"-c", "sleep 1000 & wait"})).stop({false, SIGTERM, 2s});
}

// A copy of sleep in a folder of its own, run as a program child: the tests take it away and
// put it back, as a deployment replacing a binary would. The folder goes with the object.
struct deployed_service {
  explicit deployed_service(const std::string& name)
      : folder(std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))),
        program(folder / "service") {
    std::filesystem::create_directories(folder);
    std::filesystem::copy_file("/bin/sleep", program, std::filesystem::copy_options::overwrite_existing);
  }
  ~deployed_service() {
    std::error_code ignored;
    std::filesystem::remove_all(folder, ignored);
  }
  child_spec spec(std::string id) const {
    return child_spec::program(std::move(id), herd::command(program.string(), std::vector<std::string>{"1000"}));
  }
  std::filesystem::path folder, program;
};

// Kills `victim` and waits until every child runs again; returns the pids after.
asio::awaitable<std::vector<int>> kill_and_wait(asio::any_io_executor ex, herd::supervisor& s, const std::string& victim,
                                                std::size_t restarts_before) {
  const auto before = s.which_children();
  REQUIRE(::kill(info(before, victim).pid, SIGKILL) == 0);
  const bool back = co_await until(ex, [&] {
    return info(s.which_children(), victim).restarts > restarts_before && all_running(s);
  });
  REQUIRE(back);
  co_return pids_of(s);
}

}  // namespace

TEST_SUITE("supervisor") {
  TEST_CASE("supervisor: one_for_one restarts only the child that was killed, with a new pid, stop is in reverse order") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex, specs(sleeper("a"), sleeper("b"), sleeper("c")), quick("one", log));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      CHECK(log.sequence({kind::started}) == "started a, started b, started c");
      const auto before = pids_of(sup);
      const auto after = co_await kill_and_wait(ex, sup, "b", 0);
      CHECK(after[0] == before[0]);
      CHECK(after[1] != before[1]);
      CHECK(after[2] == before[2]);
      CHECK(herd_test::wait_until_gone(before[1]));
      const auto b = info(sup.which_children(), "b");
      CHECK(b.restarts == 1);
      REQUIRE(b.last_exit);
      CHECK(b.last_exit->signaled());
      CHECK(b.last_exit->signal() == SIGKILL);
      CHECK(log.count(kind::restarting, "b") == 1);
      log.clear();
      co_await sup.async_stop();
      CHECK(log.sequence({kind::exited, kind::stopped}) == "exited c, exited b, exited a, stopped one");
      CHECK(co_await until(ex, [&] { return *run.over; }));
      CHECK_FALSE(*run.error);
      for (int pid : after) CHECK(herd_test::wait_until_gone(pid));
    });
  }

  TEST_CASE("supervisor: one_for_all stops the others, the last first, and starts all again in order") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex, specs(sleeper("a"), sleeper("b"), sleeper("c")),
                           quick("all", log, herd::supervision_strategy::one_for_all));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      const auto before = pids_of(sup);
      log.clear();
      const auto after = co_await kill_and_wait(ex, sup, "b", 0);
      for (std::size_t i = 0; i < 3; ++i) CHECK(after[i] != before[i]);
      CHECK(log.sequence({kind::exited, kind::started}) ==
            "exited b, exited c, exited a, started a, started b, started c");
      CHECK(info(sup.which_children(), "a").restarts == 0);  // stopped by the strategy, not a failure
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: rest_for_one restarts the child and those after it, not those before") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex, specs(sleeper("a"), sleeper("b"), sleeper("c"), sleeper("d")),
                           quick("rest", log, herd::supervision_strategy::rest_for_one));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      const auto before = pids_of(sup);
      log.clear();
      const auto after = co_await kill_and_wait(ex, sup, "b", 0);
      CHECK(after[0] == before[0]);
      CHECK(after[1] != before[1]);
      CHECK(after[2] != before[2]);
      CHECK(after[3] != before[3]);
      CHECK(log.sequence({kind::exited, kind::started}) ==
            "exited b, exited d, exited c, started b, started c, started d");
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: restart policies: permanent after exit 0, transient only after a failure, temporary never") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      auto options = quick("policies", log);
      options.intensity = {1000, 10s};  // room for every restart: the policies alone decide
      herd::supervisor sup(ex,
                           specs(
                               child_spec::function("clean-permanent", exit_with, 0),
                               child_spec::function("clean-transient", exit_with, 0).restart(herd::restart_policy::transient),
                               child_spec::function("failing-transient", exit_with, 3).restart(herd::restart_policy::transient),
                               child_spec::function("failing-temporary", exit_with, 3).restart(herd::restart_policy::temporary)),
                           options);
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] {
        const auto children = sup.which_children();
        return info(children, "clean-transient").state == child_state::done &&
               info(children, "failing-temporary").state == child_state::done &&
               info(children, "clean-permanent").restarts >= 2 && info(children, "failing-transient").restarts >= 2;
      }));
      co_await sup.async_stop();
      REQUIRE(co_await until(ex, [&] { return *run.over; }));
      CHECK_FALSE(*run.error);
      CHECK(log.count(kind::restarting, "clean-transient") == 0);
      CHECK(log.count(kind::restarting, "failing-temporary") == 0);
      CHECK(log.count(kind::started, "clean-transient") == 1);
      CHECK(log.count(kind::started, "failing-temporary") == 1);
      const auto children = sup.which_children();
      CHECK(info(children, "clean-transient").last_exit->code() == 0);
      CHECK(info(children, "failing-temporary").last_exit->code() == 3);
      CHECK(info(children, "clean-transient").state == child_state::done);
      CHECK(info(children, "failing-temporary").state == child_state::done);
    });
  }

  TEST_CASE("supervisor: the intensity is exact: R restarts pass, the R+1th gives up naming the child, all stopped") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      auto options = quick("crashy", log);
      options.intensity = {4, 30s};
      herd::supervisor sup(ex, specs(sleeper("steady"), child_spec::function("crasher", exit_with, 1)), options);
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return *run.over; }));
      CHECK(log.count(kind::started, "crasher") == 5);  // the first run and 4 restarts
      CHECK(log.count(kind::restarting, "crasher") == 4);
      CHECK(log.count(kind::gave_up, "crasher") == 1);
      // It reports giving up once every child is stopped.
      const std::string ending = log.sequence({kind::gave_up, kind::exited});
      CHECK(ending.find("exited steady") < ending.find("gave up crasher"));
      REQUIRE(*run.error);
      try {
        std::rethrow_exception(*run.error);
      } catch (const herd::supervisor_error& e) {
        CHECK(e.code() == herd::errc::restart_intensity);
        CHECK(e.child() == "crasher");
        CHECK(e.supervisor() == "crashy");
        REQUIRE(e.last_exit());
        CHECK(e.last_exit()->code() == 1);
        const std::string what = e.what();
        CHECK(what.find("supervisor 'crashy'") != std::string::npos);
        CHECK(what.find("child 'crasher' ended more than 4 times in 30000 ms") != std::string::npos);
        CHECK(what.find("exited with code 1") != std::string::npos);
      }
      CHECK(info(sup.which_children(), "steady").pid == 0);
      CHECK(herd_test::child_pids().empty());
    });
  }

  TEST_CASE("supervisor: backoff spaces the restarts of a child that keeps failing, doubling to its cap") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      auto options = quick("backoff", log);
      options.intensity = {6, 60s};
      options.backoff = {50ms, 200ms, 0.0, 5s};
      herd::supervisor sup(ex, specs(child_spec::function("crasher", exit_with, 1)), options);
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return *run.over; }));
      std::vector<std::chrono::steady_clock::time_point> exits, starts;
      std::vector<long> delays;
      for (const auto& e : log.entries) {
        if (e.event.what == kind::exited) exits.push_back(e.at);
        if (e.event.what == kind::started) starts.push_back(e.at);
        if (e.event.what == kind::restarting) delays.push_back(static_cast<long>(e.event.delay.count()));
      }
      CHECK(delays == std::vector<long>{0, 50, 100, 200, 200, 200});
      REQUIRE(starts.size() == 7);
      REQUIRE(exits.size() == 7);
      for (std::size_t k = 1; k < starts.size(); ++k) {
        const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(starts[k] - exits[k - 1]);
        CHECK(gap.count() >= delays[k - 1]);  // a timer never fires early
      }
    });
  }

  TEST_CASE("supervisor: a child that stops its heartbeats is stopped and restarted, one that beats is left alone") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex,
                           specs(child_spec::function("beating", beat_forever).heartbeat(1s),
                            child_spec::function("hanging", beat_then_hang, 5).heartbeat(300ms)),
                           quick("beats", log));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return log.count(kind::heartbeat_missed, "hanging") >= 1; }));
      REQUIRE(co_await until(ex, [&] { return info(sup.which_children(), "hanging").restarts >= 1; }));
      co_await sleep_for(ex, 500ms);
      CHECK(log.count(kind::heartbeat_missed, "beating") == 0);
      CHECK(info(sup.which_children(), "beating").restarts == 0);
      for (const auto& e : log.entries)
        if (e.event.what == kind::heartbeat_missed) CHECK(e.event.reason.find("allowed 300 ms") != std::string::npos);
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: a child that must say it is ready holds the next, one never ready is restarted") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex,
                           specs(child_spec::function("slow-ready", ready_after, 300).await_ready(5s), sleeper("after")),
                           quick("ready", log));
      const auto began = std::chrono::steady_clock::now();
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      CHECK(log.sequence({kind::started}) == "started slow-ready, started after");
      CHECK(log.entries.front().at - began >= 300ms);
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));

      event_log never;
      herd::supervisor stuck(ex, specs(child_spec::function("never-ready", sleep_forever).await_ready(200ms)),
                             quick("stuck", never));
      auto stuck_run = start(ex, stuck);
      REQUIRE(co_await until(ex, [&] { return never.count(kind::restarting, "never-ready") >= 1; }));
      CHECK(never.count(kind::heartbeat_missed, "never-ready") >= 1);
      CHECK(never.count(kind::started, "never-ready") == 0);
      co_await stuck.async_stop();
      CHECK(co_await until(ex, [&] { return *stuck_run.over; }));
    });
  }

  TEST_CASE("supervisor: a nested supervisor that gives up is restarted by its parent") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      event_log inner_log;
      herd::supervisor_options inner = quick("inner", inner_log);
      inner.intensity = {1, 10s};
      herd::supervisor sup(
          ex, specs(sleeper("outer-sleeper"), child_spec::supervisor("inner", specs(child_spec::function("crasher", exit_with, 2)), inner)),
          quick("outer", log));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return log.count(kind::restarting, "inner") >= 2; }));
      CHECK(inner_log.count(kind::gave_up, "crasher") >= 2);
      bool reason_seen = false;
      for (const auto& e : log.entries)
        if (e.event.what == kind::exited && e.event.child == "inner")
          reason_seen = reason_seen || e.event.reason.find("gave up: herd: supervisor 'inner': child 'crasher'") == 0;
      CHECK(reason_seen);
      CHECK(info(sup.which_children(), "outer-sleeper").restarts == 0);
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
      CHECK_FALSE(*run.error);
    });
  }

  TEST_CASE("supervisor: a program child and a function child in one tree, a program's grandchild gone with it") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex,
                           specs(sleeper("function"),
                            sh_with_grandchild("program")),
                           quick("mixed", log));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      const auto before = pids_of(sup);
      REQUIRE(co_await until(ex, [&] { return !children_of(before[1]).empty(); }));
      const auto grandchildren = children_of(before[1]);
      const auto after = co_await kill_and_wait(ex, sup, "program", 0);
      for (int pid : grandchildren) CHECK(herd_test::wait_until_gone(pid));  // the sleep went with its sh
      CHECK(after[1] != before[1]);
      CHECK(after[0] == before[0]);
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
      CHECK(log.sequence({kind::exited}) == "exited program, exited program, exited function");
    });
  }

  TEST_CASE("supervisor: a child that ignores SIGTERM is killed after its grace when stopped") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(
          ex, specs(child_spec::function("stubborn", ignore_sigterm_forever).stop({false, SIGTERM, 200ms}).await_ready()),
          quick("grace", log));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      const auto began = std::chrono::steady_clock::now();
      co_await sup.async_stop();
      CHECK(std::chrono::steady_clock::now() - began >= 200ms);
      const auto last = info(sup.which_children(), "stubborn").last_exit;
      REQUIRE(last);
      CHECK(last->signal() == SIGKILL);
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: a child that cannot be started the first time fails the run naming the child and the program") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(
          ex, specs(sleeper("fine"), child_spec::program("missing", herd::command("herd-no-such-program-xyz"))),
          quick("starts", log));
      try {
        co_await sup.async_run();
        FAIL("ran");
      } catch (const herd::supervisor_error& e) {
        CHECK(e.code() == herd::errc::program_not_found);
        CHECK(e.child() == "missing");
        const std::string what = e.what();
        CHECK(what.find("child 'missing' could not be started") != std::string::npos);
        CHECK(what.find("herd-no-such-program-xyz") != std::string::npos);
      }
      CHECK(info(sup.which_children(), "fine").pid == 0);  // stopped
    });
  }

  TEST_CASE("supervisor: a restart that fails (its program gone) is retried after its backoff until it starts") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      // A deployment that replaces the binary while the service runs: for a moment it is not there.
      const deployed_service service("herd-supervisor");
      const auto& folder = service.folder;
      const auto& program = service.program;
      event_log log;
      auto options = quick("deploy", log);
      options.backoff = {200ms, 200ms, 0.0, 5s};
      auto victim = service.spec("victim");
      herd::supervisor sup(ex, specs(std::move(victim)), options);
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      std::filesystem::rename(program, folder / "service.old");
      ::kill(info(sup.which_children(), "victim").pid, SIGKILL);
      const bool refused = co_await until(ex, [&] {
        for (const auto& e : log.entries)
          if (e.event.what == kind::exited && e.event.reason.find("could not start") == 0) return true;
        return false;
      });
      CHECK(refused);
      CHECK(info(sup.which_children(), "victim").state == child_state::waiting);
      std::filesystem::rename(folder / "service.old", program);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      CHECK(info(sup.which_children(), "victim").restarts >= 2);
      bool named = false;
      for (const auto& e : log.entries) named = named || e.event.reason.find(program.string()) != std::string::npos;
      CHECK(named);  // the reason names the program that was missing
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: restarts that keep failing to start exhaust the intensity, with the start's error as the reason") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const deployed_service service("herd-supervisor-gone");
      const auto& program = service.program;
      event_log log;
      auto options = quick("gone", log);
      options.intensity = {2, 10s};
      auto victim = service.spec("victim");
      herd::supervisor sup(ex, specs(std::move(victim)), options);
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      std::filesystem::remove(program);
      ::kill(info(sup.which_children(), "victim").pid, SIGKILL);
      REQUIRE(co_await until(ex, [&] { return *run.over; }));
      REQUIRE(*run.error);
      try {
        std::rethrow_exception(*run.error);
      } catch (const herd::supervisor_error& e) {
        CHECK(e.code() == herd::errc::restart_intensity);
        CHECK(e.child() == "victim");
        REQUIRE(e.last_exit());
        CHECK(e.last_exit()->signal() == SIGKILL);  // its last run
        const std::string what = e.what();
        CHECK(what.find("ended more than 2 times") != std::string::npos);
        CHECK(what.find(program.string()) != std::string::npos);  // why the restarts failed
      }
    });
  }

  TEST_CASE("supervisor: which_children tells state, pid, restarts and last exit") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      herd::supervisor sup(ex, specs(sleeper("a"), child_spec::function("b", exit_with, 0).restart(herd::restart_policy::temporary)),
                           quick("look", log));
      auto before = sup.which_children();
      REQUIRE(before.size() == 2);
      CHECK(before[0].id == "a");
      CHECK(before[0].state == child_state::idle);
      CHECK(before[0].pid == 0);
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return info(sup.which_children(), "b").state == child_state::done; }));
      const auto now = sup.which_children();
      CHECK(now[0].state == child_state::running);
      CHECK(now[0].pid > 0);
      CHECK(now[1].pid == 0);
      REQUIRE(now[1].last_exit);
      CHECK(now[1].last_exit->success());
      CHECK(std::string(herd::to_string(now[1].state)) == "done");
      co_await sup.async_stop();
      CHECK(sup.which_children()[0].state == child_state::idle);
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: cancelling async_run stops the children, destroying a running supervisor stops them too") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      std::vector<int> pids;
      {
        herd::supervisor sup(ex, specs(sleeper("a"), sleeper("b")), quick("cancelled", log));
        asio::cancellation_signal cancel;
        bool over = false;
        asio::co_spawn(ex, sup.async_run(), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr) { over = true; }));
        REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
        pids = pids_of(sup);
        cancel.emit(asio::cancellation_type::terminal);
        REQUIRE(co_await until(ex, [&] { return over; }));
        for (int pid : pids) CHECK(herd_test::wait_until_gone(pid));
      }
      event_log dropped_log;
      {
        herd::supervisor sup(ex, specs(sleeper("a"), sleeper("b")), quick("dropped", dropped_log));
        auto run = start(ex, sup);
        REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
        pids = pids_of(sup);
      }
      CHECK(co_await until(ex, [&] { return dropped_log.count(kind::exited, "a") == 1; }));
      for (int pid : pids) CHECK(herd_test::wait_until_gone(pid));
    });
  }

  TEST_CASE("supervisor: a stop during the ordered start stops what started and starts nothing more") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      event_log log;
      auto options = quick("early", log);
      herd::supervisor* asked = nullptr;
      options.on_event = [&](const supervisor_event& e) {
        log.entries.push_back({e, std::chrono::steady_clock::now()});
        if (e.what == kind::started && e.child == "a") asked->request_stop();  // from within an event
      };
      herd::supervisor sup(ex, specs(sleeper("a"), sleeper("b"), sleeper("c"), sleeper("d"), sleeper("e")), options);
      asked = &sup;
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return *run.over; }));
      CHECK_FALSE(*run.error);
      CHECK(log.sequence({kind::started, kind::exited, kind::stopped}) == "started a, exited a, stopped early");
      CHECK(log.count(kind::exited, "a") == 1);
      for (const auto& c : sup.which_children()) CHECK(c.pid == 0);
    });
  }

  TEST_CASE("supervisor: on an io_context run by two threads, a restart and the stop are safe") {
    herd_test::leak_check leaks;
    asio::io_context io(2);
    herd::supervisor sup(io.get_executor(), specs(sleeper("a"), sleeper("b"), sleeper("c")));
    std::atomic<bool> over{false};
    std::exception_ptr failure;
    sup.async_run([&](std::exception_ptr e) {
      failure = e;
      over = true;
    });
    std::thread first([&] { io.run(); });
    std::thread second([&] { io.run(); });
    const auto wait_for = [](const std::function<bool()>& ready) {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (!ready() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
      return ready();
    };
    CHECK(wait_for([&] { return all_running(sup); }));
    const auto before = pids_of(sup);
    ::kill(before[1], SIGKILL);
    CHECK(wait_for([&] { return info(sup.which_children(), "b").restarts == 1 && all_running(sup); }));
    sup.request_stop();
    CHECK(wait_for([&] { return over.load(); }));
    io.stop();
    first.join();
    second.join();
    CHECK_FALSE(failure);
    for (int pid : pids_of(sup)) CHECK(pid == 0);
  }

  TEST_CASE("supervisor: moved from, it reports not_running, its destruction and a second run are harmless") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::supervisor first(ex, specs(sleeper("a")));
      herd::supervisor second(std::move(first));
      CHECK_FALSE(first.valid());
      CHECK(second.valid());
      CHECK(first.name().empty());
      CHECK(second.name() == "supervisor");
      try {
        co_await first.async_run();
        FAIL("ran");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::not_running);
      }
      const auto [stopped] = co_await first.async_stop(asio::as_tuple(asio::deferred));
      CHECK(stopped == herd::errc::not_running);
      CHECK_THROWS_AS(first.which_children(), boost::system::system_error);
      CHECK_THROWS_AS(first.request_stop(), boost::system::system_error);
      first.kill();  // nothing to kill
      auto run = start(ex, second);
      REQUIRE(co_await until(ex, [&] { return all_running(second); }));
      try {
        co_await second.async_run();
        FAIL("ran twice");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::invalid_argument);
        CHECK(std::string(e.what()).find("async_run called twice") != std::string::npos);
      }
      first = std::move(second);
      CHECK(first.valid());
      co_await first.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }

  TEST_CASE("supervisor: bad specs and options are refused naming the value") {
    asio::io_context io;
    const auto refused = [&](std::vector<child_spec> children, herd::supervisor_options options) -> std::string {
      try {
        herd::supervisor s(io.get_executor(), std::move(children), std::move(options));
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::invalid_argument);
        return e.what();
      }
      return "accepted";
    };
    CHECK(refused({sleeper("x"), sleeper("x")}, {}).find("two children have the id 'x'") != std::string::npos);
    CHECK(refused({sleeper("")}, {}).find("empty id") != std::string::npos);
    herd::supervisor_options bad_period;
    bad_period.intensity.period = 0ms;
    CHECK(refused({sleeper("x")}, bad_period).find("intensity period is 0 ms") != std::string::npos);
    herd::supervisor_options bad_jitter;
    bad_jitter.backoff.jitter = 2.0;
    CHECK(refused({sleeper("x")}, bad_jitter).find("jitter is 2") != std::string::npos);
    herd::supervisor_options bad_backoff;
    bad_backoff.backoff.maximum = 1ms;
    CHECK(refused({sleeper("x")}, bad_backoff).find("backoff from 100 ms to 1 ms") != std::string::npos);
  }

  TEST_CASE("supervisor: heartbeat() outside supervision says false, a spawned child finds its slot") {
    herd_test::leak_check leaks;
    CHECK_FALSE(herd::this_process::heartbeat());
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto plain = herd::start(ex, heartbeat_unsupervised);
      CHECK_FALSE(co_await plain.async_result());
      event_log log;
      herd::process_options spawned;
      spawned.start_method = herd::start_method::spawn;
      // Ready (so running) only through its slot: an exec'd child found the supervisor's page.
      herd::supervisor sup(
          ex, specs(child_spec::function("spawned", spawned, ready_then_beat).await_ready(20s).heartbeat(1s)),
          quick("spawned", log));
      auto run = start(ex, sup);
      REQUIRE(co_await until(ex, [&] { return all_running(sup); }));
      co_await sleep_for(ex, 1500ms);  // past its heartbeat timeout: it beats
      CHECK(log.count(kind::heartbeat_missed, "spawned") == 0);
      CHECK(info(sup.which_children(), "spawned").restarts == 0);
      co_await sup.async_stop();
      CHECK(co_await until(ex, [&] { return *run.over; }));
    });
  }
}

namespace {

struct probe_run {
  std::string out;
  herd::exit_status status;
  std::vector<int> tree;  // the children's pids, then the program's grandchild
};

asio::awaitable<probe_run> run_probe(asio::any_io_executor ex, const char* mode, int signals) {
  herd::child probe(ex, herd::command(HERD_SUPERVISOR_PROBE, {mode}).std_out(herd::stdio::pipe()));
  probe_run result;
  for (;;) {
    const std::string line = co_await probe.std_out().async_read_line();
    result.out += line + "\n";
    if (line.rfind("tree ", 0) != 0) continue;
    std::istringstream pids(line.substr(5));
    for (int pid = 0; pids >> pid;) result.tree.push_back(pid);
    break;
  }
  // The program "web" (second) runs sh, whose child is the sleep.
  REQUIRE(co_await until(ex, [&] { return !children_of(result.tree.at(1)).empty(); }));
  for (int grandchild : children_of(result.tree.at(1))) result.tree.push_back(grandchild);
  for (int k = 0; k < signals; ++k) {
    if (k > 0) co_await sleep_for(ex, 200ms);
    probe.signal(SIGTERM);
  }
  result.out += co_await probe.std_out().async_read_all();
  result.status = co_await probe.async_wait();
  co_return result;
}

}  // namespace

TEST_SUITE("supervisor") {
  TEST_CASE("supervisor: SIGTERM to the parent stops the tree in reverse order and exits 0, nothing left") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const probe_run run = co_await run_probe(ex, "orderly", 1);
      CHECK(run.status.code() == 0);
      const auto web = run.out.find("exited web");
      const auto db = run.out.find("exited db");
      CHECK(web != std::string::npos);
      CHECK(db != std::string::npos);
      CHECK(web < db);
      CHECK(run.out.find("supervisor over") != std::string::npos);
      CHECK(run.out.find("loop ended, exit code 0") != std::string::npos);
      CHECK(run.tree.size() == 3);
      for (int pid : run.tree) CHECK(herd_test::wait_until_gone(pid));
    });
  }

  TEST_CASE("supervisor: a second SIGTERM while a child ignores the first forces the tree down, exit 143") {
    herd_test::leak_check leaks;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const auto began = std::chrono::steady_clock::now();
      const probe_run run = co_await run_probe(ex, "stubborn", 2);
      CHECK(run.status.code() == 128 + SIGTERM);
      CHECK(std::chrono::steady_clock::now() - began < 20s);  // not the 30 s grace
      CHECK(run.tree.size() == 4);
      for (int pid : run.tree) CHECK(herd_test::wait_until_gone(pid));
    });
  }
}
