// herd::pipeline: stages in worker processes and in the parent, backpressure, order, errors,
// cancellation, faults, sources and sinks, the progress display; and its pure parts.
#include <herd/pipeline.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include "detail/pipeline_steps.hpp"

#include <herd/queue.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <pty.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

int square(int x) { return x * x; }
bool is_even(int x) { return x % 2 == 0; }
std::vector<int> repeat_n(int x) { return std::vector<int>(static_cast<std::size_t>(x % 4), x); }
std::size_t length_of(std::string s) { return s.size(); }
int my_pid(int) { return ::getpid(); }

// Sleeps a pseudo-random 0-3 ms per item, so items finish out of order.
int jittery(int x) {
  std::minstd_rand random(static_cast<unsigned>(x) * 2654435761u);
  ::usleep(static_cast<useconds_t>(random() % 3000));
  return x;
}

int fail_on_13(int x) {
  if (x == 13) throw std::runtime_error("thirteen is unlucky");
  return x;
}

// Announces its pid through a file, then spins: the test kills it.
int kill_me_at_5(int x) {
  if (x == 5) {
    std::ofstream(std::filesystem::temp_directory_path() / ("herd-pipeline-victim-" + std::to_string(::getppid())))
        << ::getpid();
    for (;;) ::pause();
  }
  return x;
}

// Ends its worker on the first try of item 5 only (a marker file remembers), as a flaky crash.
int crash_once_at_5(int x) {
  if (x == 5) {
    const auto marker =
        std::filesystem::temp_directory_path() / ("herd-pipeline-crashed-" + std::to_string(::getppid()));
    if (!std::filesystem::exists(marker)) {
      std::ofstream(marker) << "crashed";
      ::raise(SIGKILL);
    }
  }
  return x;
}

// Every natural number, forever.
struct naturals {
  struct iterator {
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    int n = 0;
    int operator*() const { return n; }
    iterator& operator++() {
      ++n;
      return *this;
    }
    void operator++(int) { ++n; }
    bool operator!=(const iterator&) const { return true; }
    bool operator==(const iterator&) const { return false; }
  };
  iterator begin() const { return {}; }
  iterator end() const { return {}; }
};

std::vector<int> up_to(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}


herd::stage_options workers(std::size_t n, bool ordered = true) {
  herd::stage_options o;
  o.processes = n;
  o.ordered = ordered;
  o.stop = herd::stop_policy{false, SIGTERM, 200ms};
  return o;
}

}  // namespace

TEST_SUITE("pipeline") {
  TEST_CASE("stages in workers and in the parent give every item, in order, with the counts") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int offset = 1000;  // a parent stage may capture
      auto p = herd::from_range(ex, up_to(500))
                   .map("square", square, workers(2))
                   .filter("even", is_even, workers(2))
                   .map_in_parent("offset", [offset](int x) { return x + offset; });
      const std::vector<int> got = co_await p.async_collect();
      std::vector<int> expected;
      for (int i = 0; i < 500; ++i)
        if (i * i % 2 == 0) expected.push_back(i * i + 1000);
      CHECK(got == expected);
      const herd::pipeline_summary& s = p.summary();
      REQUIRE(s.stages.size() == 5);  // source, three stages, the sink
      CHECK(s.stages[0].items_out == 500);
      CHECK(s.stages[1].name == "square");
      CHECK(s.stages[1].items_in == 500);
      CHECK(s.stages[1].items_out == 500);
      CHECK(s.stages[2].items_out == expected.size());
      CHECK(s.stages[3].items_out == expected.size());
      CHECK(s.stages[4].items_in == expected.size());
      CHECK(s.stages[1].busy_seconds > 0);
      CHECK(s.seconds > 0);
    });
  }

  TEST_CASE("ordered stages keep the input order under random delays, unordered ones give each item once") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto ordered = herd::from_range(ex, up_to(300)).map("jitter", jittery, workers(2));
      const std::vector<int> in_order = co_await ordered.async_collect();
      CHECK(in_order == up_to(300));

      auto unordered = herd::from_range(ex, up_to(300)).map("jitter", jittery, workers(2, false));
      std::vector<int> got = co_await unordered.async_collect();
      std::vector<int> sorted = got;
      std::sort(sorted.begin(), sorted.end());
      CHECK(sorted == up_to(300));  // each exactly once
      CHECK(got != up_to(300));     // and not in input order (300 items with 0-3 ms jitter on 2 workers)
    });
  }

  TEST_CASE("flat_map gives one item to many, and an empty source an empty result") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::from_range(ex, up_to(40)).flat_map("repeat", repeat_n, workers(2));
      const std::vector<int> got = co_await p.async_collect();
      std::vector<int> expected;
      for (int i = 0; i < 40; ++i)
        for (int k = 0; k < i % 4; ++k) expected.push_back(i);
      CHECK(got == expected);
      CHECK(p.summary().stages[1].items_in == 40);
      CHECK(p.summary().stages[1].items_out == expected.size());

      auto empty = herd::from_range(ex, std::vector<int>{}).map("square", square, workers(1));
      const std::vector<int> nothing = co_await empty.async_collect();
      CHECK(nothing.empty());
      CHECK(empty.summary().stages[1].items_in == 0);
    });
  }

  TEST_CASE("an error in a middle stage stops the endless source and the sink and names the stage and item") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::vector<int> seen;
      auto p = herd::from_range(ex, naturals{}).map("unlucky", fail_on_13, workers(2)).map_in_parent("id", [](int x) {
        return x;
      });
      try {
        co_await p.async_for_each([&seen](int x) { seen.push_back(x); });
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.stage() == "unlucky");
        CHECK(e.index() == 13);
        CHECK(e.code() == herd::errc::child_exception);
        CHECK(std::string(e.what()).find("thirteen is unlucky") != std::string::npos);
        CHECK(std::string(e.what()).find("'unlucky'") != std::string::npos);
        CHECK(std::string(e.what()).find("item 13") != std::string::npos);
        CHECK_THROWS_AS(std::rethrow_exception(e.original()), herd::child_error);
      }
      // Ordered: the sink saw a prefix of the items before the failing one (what was still in the
      // links when everything stopped is dropped), never one after it.
      CHECK(seen.size() <= 13);
      CHECK(seen == std::vector<int>(up_to(static_cast<int>(seen.size()))));
      const auto metrics = p.metrics();
      CHECK(metrics[0].items_out < 13 + 64 * 3 + 4 * 64);  // the source stopped soon after
    });
  }

  TEST_CASE("on_error::skip drops and counts the failing items and the pipeline goes on") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto options = workers(2);
      options.errors = herd::on_error::skip;
      auto p = herd::from_range(ex, up_to(30)).map("unlucky", fail_on_13, options);
      std::vector<int> expected = up_to(30);
      expected.erase(expected.begin() + 13);
      const std::vector<int> kept = co_await p.async_collect();
      CHECK(kept == expected);
      CHECK(p.summary().stages[1].failed == 1);
      CHECK(p.summary().stages[1].items_out == 29);
    });
  }

  TEST_CASE("cancelling a running pipeline stops every stage and leaves no process") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::from_range(ex, naturals{}).map("square", square, workers(2));
      try {
        co_await herd::with_timeout(p.async_for_each([](int) {}), 300ms);
        FAIL("an endless pipeline ended");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::timed_out);
      }
      CHECK(p.metrics()[2].items_in > 100);  // it did run
    });
  }

  TEST_CASE("a worker SIGKILLed inside a stage fails its items with worker_died, or they run again with retries") {
    leak_check guard;
    const auto victim_file =
        std::filesystem::temp_directory_path() / ("herd-pipeline-victim-" + std::to_string(::getpid()));
    const auto marker = std::filesystem::temp_directory_path() / ("herd-pipeline-crashed-" + std::to_string(::getpid()));
    std::filesystem::remove(victim_file);
    std::filesystem::remove(marker);
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto options = workers(2);
      options.chunk = 1;
      auto p = herd::from_range(ex, up_to(20)).map("victim", kill_me_at_5, options);
      asio::steady_timer poll(ex);
      auto killer = [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 500 && !std::filesystem::exists(victim_file); ++i) {
          poll.expires_after(10ms);
          co_await poll.async_wait(asio::deferred);
        }
        poll.expires_after(20ms);  // its pid written whole
        co_await poll.async_wait(asio::deferred);
        int pid = 0;
        std::ifstream(victim_file) >> pid;
        if (pid > 0) ::kill(pid, SIGKILL);
      };
      asio::co_spawn(ex, killer(), asio::detached);
      try {
        co_await p.async_collect();
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.code() == herd::errc::worker_died);
        CHECK(e.stage() == "victim");
        CHECK(e.index() == 5);
      }
      std::filesystem::remove(victim_file);

      // With a retry, the item lost to a crash runs again and the pipeline finishes.
      auto retrying = workers(2);
      retrying.chunk = 1;
      retrying.retries = 1;
      auto q = herd::from_range(ex, up_to(20)).map("flaky", crash_once_at_5, retrying);
      const std::vector<int> all = co_await q.async_collect();
      CHECK(all == up_to(20));
      CHECK(std::filesystem::exists(marker));
    });
    std::filesystem::remove(marker);
  }

  TEST_CASE("backpressure: an endless source and a slow sink stay within the buffers, in bounded memory") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto options = workers(2);
      options.buffer = 16;
      auto p = herd::from_range(ex, naturals{}).map("square", square, options);
      std::size_t seen = 0;
      long before = 0;
      std::size_t most_ahead = 0;
      asio::steady_timer pause(ex);
      auto sink = [&](int) -> asio::awaitable<void> {
        ++seen;
        if (seen == 200) before = herd_test::resident_kib();
        const auto m = p.metrics();
        most_ahead = std::max(most_ahead, m[0].items_out - seen);
        CHECK(m[1].queued <= 16);
        if (seen % 50 == 0) {
          pause.expires_after(1ms);
          co_await pause.async_wait(asio::deferred);
        }
      };
      try {
        co_await herd::with_timeout(p.async_for_each(sink), 1500ms);
        FAIL("an endless pipeline ended");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::timed_out);
      }
      CHECK(seen > 1000);
      // The source is never further ahead of the sink than the links and the chunks hold: 16
      // waiting for the stage, 2 workers x 2 chunks of up to 64 in flight, one more being handed
      // on, 64 in the link into the sink and 64 in the sink's hands.
      CHECK(most_ahead <= 16 + 4 * 64 + 3 * 64);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
      const long growth = herd_test::resident_kib() - before;
      CHECK_MESSAGE(growth < 4096, "RSS grew by ", growth, " KiB");
#else
      (void)before;
#endif
    });
  }

  TEST_CASE("sources: a producer coroutine, a queue, a file's lines, a program's lines") {
    leak_check guard;
    const auto file = std::filesystem::temp_directory_path() / ("herd-pipeline-lines-" + std::to_string(::getpid()));
    std::ofstream(file) << "alpha\nbeta\n\ngamma";  // an empty line, and a last one without '\n'
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto produced = herd::from_producer<int>(ex, [](auto emit) -> asio::awaitable<void> {
        for (int i = 0; i < 10; ++i)
          if (!co_await emit(i * 3)) co_return;
      });
      auto squared = std::move(produced).map("square", square, workers(1));
      auto tripled = co_await squared.async_collect();
      CHECK(tripled == std::vector<int>{0, 9, 36, 81, 144, 225, 324, 441, 576, 729});

      herd::queue<std::string> q(ex);
      const std::vector<std::string> words{"one", "three", "five"};
      for (const std::string& word : words) co_await q.async_put(word);
      q.close();
      auto lengths = herd::from_queue(ex, q).map("length", length_of, workers(1));
      const std::vector<std::size_t> sizes = co_await lengths.async_collect();
      const std::vector<std::size_t> expected_sizes{3, 5, 4};
      CHECK(sizes == expected_sizes);

      auto lines = herd::from_file_lines(ex, file);
      const std::vector<std::string> read = co_await lines.async_collect();
      const std::vector<std::string> expected_lines{"alpha", "beta", "", "gamma"};
      CHECK(read == expected_lines);

      auto missing = herd::from_file_lines(ex, file.string() + "-missing");
      try {
        co_await missing.async_collect();
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(std::string(e.what()).find("-missing") != std::string::npos);
      }

      auto program = herd::from_command_lines(ex, herd::command("printf", "x\\ny\\n"));
      const std::vector<std::string> printed = co_await program.async_collect();
      const std::vector<std::string> expected_printed{"x", "y"};
      CHECK(printed == expected_printed);
      auto failing = herd::from_command_lines(ex, herd::command("sh", "-c", "echo a; exit 3"));
      try {
        co_await failing.async_collect();
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.code() == herd::errc::child_exited);
        CHECK(std::string(e.what()).find("3") != std::string::npos);
      }
    });
    std::filesystem::remove(file);
  }

  TEST_CASE("sinks: a queue and a file, and a sink that throws stops the pipeline") {
    leak_check guard;
    const auto file = std::filesystem::temp_directory_path() / ("herd-pipeline-out-" + std::to_string(::getpid()));
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::queue<int> q(ex);
      auto into_queue = herd::from_range(ex, up_to(5)).map("square", square, workers(1));
      co_await into_queue.async_into(q);
      for (int i = 0; i < 5; ++i) {
        const int got = co_await q.async_get();
        CHECK(got == i * i);
      }

      auto into_file = herd::from_range(ex, up_to(4)).map("square", square, workers(1));
      co_await into_file.async_into_file(file);
      std::ifstream in(file);
      CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "0\n1\n4\n9\n");

      auto throwing = herd::from_range(ex, naturals{});
      try {
        co_await throwing.async_for_each([](int x) {
          if (x == 7) throw std::logic_error("the sink is full");
        });
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.stage() == "sink");
        CHECK(e.index() == 7);
        CHECK(e.code() == herd::errc::stage_failed);
        CHECK(std::string(e.what()).find("the sink is full") != std::string::npos);
      }
    });
    std::filesystem::remove(file);
  }

  TEST_CASE("a program stage is fed items as lines and gives its output lines, and its early exit fails the stage") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const std::vector<std::string> words{"alpha", "beta", "gamma"};
      auto upper = herd::from_range(ex, words).through("upper", herd::command("tr", "a-z", "A-Z"));
      const std::vector<std::string> shouted = co_await upper.async_collect();
      const std::vector<std::string> expected{"ALPHA", "BETA", "GAMMA"};
      CHECK(shouted == expected);
      CHECK(upper.summary().stages[1].items_in == 3);
      CHECK(upper.summary().stages[1].items_out == 3);

      // A program stage between function stages: lengths of the words it prints.
      auto mixed = herd::from_range(ex, up_to(5))
                       .map("square", square, workers(1))
                       .map_in_parent("text", [](int x) { return std::to_string(x); })
                       .through("rev", herd::command("rev"))
                       .map("length", length_of, workers(1));
      const std::vector<std::size_t> lengths = co_await mixed.async_collect();
      const std::vector<std::size_t> expected_lengths{1, 1, 1, 1, 2};
      CHECK(lengths == expected_lengths);

      // head stops reading after two lines: the rest of an endless input is not silently lost.
      auto head = herd::from_range(ex, naturals{})
                      .map_in_parent("text", [](int x) { return std::to_string(x); })
                      .through("head", herd::command("head", "-n", "2"));
      try {
        co_await head.async_collect();
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.stage() == "head");
        CHECK(std::string(e.what()).find("exited before reading all its input") != std::string::npos);
      }

      // A failing exit status fails the stage, with the status in the message.
      auto failing = herd::from_range(ex, words).through("fails", herd::command("sh", "-c", "read x; echo $x; exit 4"));
      try {
        co_await failing.async_collect();
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.code() == herd::errc::child_exited);
        CHECK(std::string(e.what()).find("code 4") != std::string::npos);
      }
    });
  }

  TEST_CASE("merge takes the items of several pipelines and tee gives every item to several") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::vector<int> evens, odds;
      for (int i = 0; i < 100; ++i) (i % 2 == 0 ? evens : odds).push_back(i);
      auto merged = herd::merge(herd::from_range(ex, evens).map("square", square, workers(1)), herd::from_range(ex, odds))
                        .map_in_parent("id", [](int x) { return x; });
      const std::vector<int> got = co_await merged.async_collect();
      REQUIRE(got.size() == 100);
      std::vector<int> from_evens, from_odds;
      for (int x : got) (x % 2 == 0 ? from_evens : from_odds).push_back(x);
      std::vector<int> squares;
      for (int x : evens) squares.push_back(x * x);
      CHECK(from_evens == squares);  // each input keeps its own order
      CHECK(from_odds == odds);

      // One input failing stops the merged pipeline, naming it.
      auto failing = herd::merge(herd::from_range(ex, up_to(30)).map("unlucky", fail_on_13, workers(1)),
                                 herd::from_range(ex, naturals{}));
      try {
        co_await failing.async_for_each([](int) {});
        FAIL("no error");
      } catch (const herd::pipeline_error& e) {
        CHECK(e.stage() == "merge");
        CHECK(std::string(e.what()).find("unlucky") != std::string::npos);
        CHECK(std::string(e.what()).find("thirteen") != std::string::npos);
      }

      // Fan-out: both branches see every item of one upstream, which runs once.
      std::vector<herd::pipeline<int>> branches = herd::tee(herd::from_range(ex, up_to(200)).map("square", square, workers(2)), 2);
      auto kept = std::move(branches[0]).filter("even", is_even, workers(1));
      auto shifted = std::move(branches[1]).map_in_parent("plus one", [](int x) { return x + 1; });
      std::vector<int> even_squares, plus_one;
      std::vector<asio::awaitable<void>> both;
      auto run_kept = [&]() -> asio::awaitable<void> { even_squares = co_await kept.async_collect(); };
      auto run_shifted = [&]() -> asio::awaitable<void> { plus_one = co_await shifted.async_collect(); };
      co_await (run_kept() && run_shifted());
      std::vector<int> expected_even, expected_plus;
      for (int i = 0; i < 200; ++i) {
        if (i * i % 2 == 0) expected_even.push_back(i * i);
        expected_plus.push_back(i * i + 1);
      }
      CHECK(even_squares == expected_even);
      CHECK(plus_one == expected_plus);
    });
  }

  TEST_CASE("a parent stage runs its coroutines concurrently, at most as many as asked") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      int running = 0, most = 0;
      herd::stage_options options;
      options.concurrency = 4;
      options.ordered = false;
      auto p = herd::from_range(ex, up_to(40)).map_in_parent("wait", [&](int x) -> asio::awaitable<int> {
        most = std::max(most, ++running);
        asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
        co_await t.async_wait(asio::deferred);
        --running;
        co_return x;
      }, options);
      const auto start = std::chrono::steady_clock::now();
      auto got = co_await p.async_collect();
      CHECK(got.size() == 40);
      CHECK(most == 4);
      CHECK(std::chrono::steady_clock::now() - start < 400ms);  // 10 rounds of 10 ms, not 40
    });
  }

  TEST_CASE("the progress display: plain lines on a pipe, lines redrawn in place on a terminal") {
    leak_check guard;
    int ends[2];
    REQUIRE(::pipe(ends) == 0);
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::pipeline_options shown;
      shown.progress = true;
      shown.progress_every = 50ms;
      shown.progress_fd = ends[1];
      auto p = herd::from_range(ex, up_to(60), shown).map("slow", jittery, workers(1));
      co_await p.async_collect();
    });
    ::close(ends[1]);
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = ::read(ends[0], buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(n));
    ::close(ends[0]);
    CHECK(text.find("pipeline ") != std::string::npos);
    CHECK(text.find("slow") != std::string::npos);
    CHECK(text.find("of 60") != std::string::npos);  // the source's size is known
    CHECK(text.find("100%") != std::string::npos);   // the last drawing, at the end
    CHECK(text.find('\x1b') == std::string::npos);   // no escape codes into a pipe

    int terminal = -1, follower = -1;
    REQUIRE(::openpty(&terminal, &follower, nullptr, nullptr, nullptr) == 0);
    herd_test::run([&](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::pipeline_options shown;
      shown.progress = true;
      shown.progress_fd = follower;
      auto p = herd::from_range(ex, up_to(150), shown).map("slow", jittery, workers(1));
      co_await p.async_collect();
    });
    ::close(follower);
    std::string drawn;
    for (ssize_t n; (n = ::read(terminal, buffer, sizeof buffer)) > 0;) drawn.append(buffer, static_cast<std::size_t>(n));
    ::close(terminal);
    CHECK(drawn.find("\x1b[2K") != std::string::npos);  // lines cleared and drawn again
    CHECK(drawn.find("F") != std::string::npos);
    CHECK(drawn.find("slow") != std::string::npos);
  }

  TEST_CASE("a stage's workers are separate processes, gone once the pipeline is done") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto options = workers(2);
      options.chunk = 1;
      auto p = herd::from_range(ex, up_to(50)).map("pid", my_pid, options);
      const std::vector<int> pids = co_await p.async_collect();
      const std::set<int> distinct(pids.begin(), pids.end());
      CHECK(distinct.size() == 2);
      CHECK(distinct.count(::getpid()) == 0);
      for (int pid : distinct) CHECK(::kill(pid, 0) != 0);  // already reaped: no such process
    });
  }
}

TEST_SUITE("pipeline") {
  TEST_CASE("a pipeline moved from, extended or run once reports not_running, and destroys quietly") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      auto p = herd::from_range(ex, up_to(3));
      auto q = std::move(p);
      CHECK_FALSE(p.valid());
      CHECK(p.metrics().empty());
      CHECK_THROWS_WITH_AS(std::move(p).map("square", square), doctest::Contains("moved from"),
                           boost::system::system_error);
      try {
        co_await p.async_collect();
        FAIL("ran");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::not_running);
      }
      auto r = std::move(q).map("square", square, workers(1));
      CHECK_FALSE(q.valid());
      const std::vector<int> squares = co_await r.async_collect();
      const std::vector<int> expected_squares{0, 1, 4};
      CHECK(squares == expected_squares);
      CHECK_FALSE(r.valid());  // a pipeline runs once
      try {
        co_await r.async_collect();
        FAIL("ran twice");
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == herd::errc::not_running);
      }
    });
  }
}

TEST_SUITE("pipeline steps") {
  TEST_CASE("the reorder buffer releases in start order when ordered, as finished when not") {
    herd::detail::reorder_buffer<int> ordered(true);
    for (int i = 0; i < 3; ++i) CHECK(ordered.start() == static_cast<std::uint64_t>(i));
    ordered.finish(2, 20);
    CHECK_FALSE(ordered.ready());
    ordered.finish(0, 0);
    REQUIRE(ordered.ready());
    CHECK(ordered.release() == 0);
    CHECK_FALSE(ordered.ready());  // 1 is still out
    ordered.finish(1, 10);
    CHECK(ordered.release() == 10);
    CHECK(ordered.release() == 20);
    CHECK(ordered.outstanding() == 0);

    herd::detail::reorder_buffer<int> unordered(false);
    unordered.start();
    unordered.start();
    unordered.finish(1, 11);
    REQUIRE(unordered.ready());
    CHECK(unordered.release() == 11);
    CHECK(unordered.outstanding() == 1);
  }

  TEST_CASE("a chunk's outcomes decode item by item, and garbage is bad_message") {
    std::string bytes;
    herd::encoder e(bytes);
    e.value(std::uint8_t{1});
    e.size(2);
    e.value(std::string("a"));
    e.value(std::string("bc"));
    e.value(std::uint8_t{0});
    e.value(std::string("std::runtime_error"));
    e.value(std::string("boom"));
    e.value(std::uint8_t{1});
    e.size(0);
    const auto outcomes = herd::detail::decode_chunk_outcomes(bytes, 3);
    REQUIRE(outcomes.size() == 3);
    CHECK(outcomes[0].ok);
    CHECK(outcomes[0].outputs == std::vector<std::string>{"a", "bc"});
    CHECK_FALSE(outcomes[1].ok);
    CHECK(outcomes[1].error_type == "std::runtime_error");
    CHECK(outcomes[1].error_message == "boom");
    CHECK(outcomes[2].ok);
    CHECK(outcomes[2].outputs.empty());
    CHECK_THROWS_AS(herd::detail::decode_chunk_outcomes(bytes, 4), boost::system::system_error);  // cut short
    CHECK_THROWS_AS(herd::detail::decode_chunk_outcomes(bytes + "x", 3), boost::system::system_error);
    CHECK_THROWS_AS(herd::detail::decode_chunk_outcomes(std::string("\x07", 1), 1), boost::system::system_error);
    const std::string chunk = herd::detail::encode_chunk({herd::encode(5), herd::encode(6)});
    herd::decoder d(chunk);
    CHECK(d.size() == 2);
    CHECK(d.value<int>() == 5);
    CHECK(d.value<int>() == 6);
  }

  TEST_CASE("progress lines show counts, rates, the share done and the time left") {
    std::vector<herd::stage_metrics> stages(3);
    stages[0] = {"source", 0, 500, 0, 0, 0, 0, 100};
    stages[1] = {"square", 480, 470, 2, 20, 3, 1.5, 95};
    stages[2] = {"sink", 470, 470, 0, 0, 0, 0, 95};
    const auto lines = herd::detail::progress_lines(stages, 1000, 65);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "pipeline 1:05 50% of 1.0k, ETA 0:05");
    CHECK(lines[2].find("square") != std::string::npos);
    CHECK(lines[2].find("in 480") != std::string::npos);
    CHECK(lines[2].find("failed 2") != std::string::npos);
    CHECK(lines[2].find("queued 20") != std::string::npos);
    CHECK(lines[2].find("95/s") != std::string::npos);
    CHECK(lines[1].find("failed") == std::string::npos);  // shown only when there are failures
    const auto unknown = herd::detail::progress_lines(stages, std::nullopt, 3725);
    CHECK(unknown[0] == "pipeline 1:02:05");
    CHECK(herd::detail::short_count(1234567) == "1.2M");
    CHECK(herd::detail::short_duration(std::nullopt) == "--");
    CHECK(herd::detail::redraw({"a", "b"}, 2) == "\x1b[2F\x1b[2Ka\n\x1b[2Kb\n");
    CHECK(herd::detail::redraw({"a"}, 0) == "\x1b[2Ka\n");
  }

  TEST_CASE("the chunk sizer aims at about 2 ms of work a chunk, one item until it knows") {
    herd::detail::chunk_sizer sizer(64);
    CHECK(sizer.next() == 1);
    sizer.finished(1, 0.000010);  // 10 us an item: 200 fit, capped at 64
    CHECK(sizer.next() == 64);
    herd::detail::chunk_sizer slow(64);
    slow.finished(1, 0.050);  // 50 ms an item: one at a time
    CHECK(slow.next() == 1);
    herd::detail::chunk_sizer middle(64);
    middle.finished(4, 0.0008);  // 200 us an item: 10 a chunk
    CHECK(middle.next() == 10);
    middle.finished(10, 0.0008);  // faster now (80 us): smoothed, it grows
    CHECK(middle.next() > 10);
    CHECK(middle.next() <= 25);
  }

  TEST_CASE("the rate meter follows the count per second") {
    herd::detail::rate_meter meter;
    meter.sample(0, 0);
    CHECK(meter.sample(100, 1) == doctest::Approx(100));
    CHECK(meter.sample(300, 2) == doctest::Approx(200));  // a whole second's sample replaces the rate
    const double after_short = meter.sample(320, 2.1);    // 200/s for a tenth of a second
    CHECK(after_short == doctest::Approx(200));
  }
}
