// herd::pool with real worker processes: results and their order, failures of every kind
// (exceptions, deaths, poison, timeouts, initializer), cancellation, recycling, close/terminate,
// the blocking forms, and no process or descriptor left behind.
#include <herd/pool.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include "detail/spawn_process.hpp"

#include <herd/process.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <fstream>
#include <future>
#include <csignal>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

int square(int x) { return x * x; }
int add(int a, int b) { return a + b; }
int add_one(int x) { return x + 1; }
int my_pid() { return ::getpid(); }
std::string shout(std::string text) { return text + "!"; }

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
int sleep_then_pid(int ms) {
  sleep_ms(ms);
  return ::getpid();
}
// A page the test process and all its workers share, by name: a forked worker inherits the
// mapping, a spawned one (this binary run again) opens it by the test process's pid, which
// tests/main.cpp puts in HERD_TEST_OWNER. The test process removes the names at its exit.
void* shared_page(const char* what) {
  const char* owner = std::getenv("HERD_TEST_OWNER");
  if (owner == nullptr) std::abort();
  const std::string name = std::string("/herd-test-") + owner + "-" + what;
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT, 0600);
  if (fd < 0 || ::ftruncate(fd, 4096) != 0) std::abort();
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (page == MAP_FAILED) std::abort();
  static struct names {
    std::vector<std::string> made;
    int by = ::getpid();
    ~names() {
      if (::getpid() == by)
        for (const auto& n : made) ::shm_unlink(n.c_str());
    }
  } owned;
  owned.made.push_back(name);
  return page;
}

// The pid of a worker that has begun an announced task: a test that kills or cancels a running
// task waits for it, as a fixed sleep would not be enough on a loaded machine.
std::atomic<int>& started() {
  static auto* word = static_cast<std::atomic<int>*>(shared_page("started"));
  return *word;
}
int sleep_announced(int ms) {
  started() = ::getpid();
  return sleep_then_pid(ms);
}
[[noreturn]] int spin_announced(int) {
  started() = ::getpid();
  for (;;) std::atomic_signal_fence(std::memory_order_seq_cst);
}
asio::awaitable<int> until_started(asio::any_io_executor ex) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (started() == 0 && std::chrono::steady_clock::now() < deadline) {
    asio::steady_timer t(ex, 1ms);
    co_await t.async_wait(asio::deferred);
  }
  co_return started().load();
}

// Waits (up to 20 s) until `holding(stats)` is false: a stopped worker's tasks are held until
// its end has been seen, after the stop policy's signals.
template <typename Holding>
asio::awaitable<herd::pool_stats> until_not(asio::any_io_executor ex, const herd::pool& pool, Holding holding) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (holding(pool.stats()) && std::chrono::steady_clock::now() < deadline) {
    asio::steady_timer t(ex, 5ms);
    co_await t.async_wait(asio::deferred);
  }
  co_return pool.stats();
}
const auto holds_tasks = [](const herd::pool_stats& s) { return s.running + s.queued != 0; };

// The code of the task_error `work` throws; an empty code if it returns.
template <typename T>
asio::awaitable<herd::error_code> task_failure(asio::awaitable<T> work) {
  try {
    co_await std::move(work);
  } catch (const herd::task_error& e) {
    co_return e.code();
  }
  co_return herd::error_code{};
}

[[noreturn]] int spin_forever(int) {
  for (;;) std::atomic_signal_fence(std::memory_order_seq_cst);
}
int die_by_sigkill(int) {
  ::kill(::getpid(), SIGKILL);
  return 0;
}
int crash_if_negative(int x) {
  if (x < 0) std::abort();
  sleep_ms(2);
  return x;
}
int throw_invalid(int x) {
  if (x == 3) throw std::invalid_argument("three is not allowed");
  return x;
}

struct point {
  int x;
  std::string label;
};
point move_point(point p, int dx) { return {p.x + dx, p.label + "'"}; }

int worker_setting = 0;
// Set in the test process before its pool starts: a forked worker has a copy, a spawned one
// starts from the program's own initial value.
int parent_mark = 0;
int read_parent_mark() { return parent_mark; }
void set_worker_setting(int v) { worker_setting = v; }
int read_worker_setting() { return worker_setting; }

asio::awaitable<int> async_double(int x) {
  asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
  co_await t.async_wait(asio::deferred);
  co_return 2 * x;
}

// Coroutine tasks that meet: each counts itself in, then waits (on timers, as an I/O task
// would) until `want` of them are in at once, or gives up after 10 s. Shared between workers.
struct meeting_words {
  std::atomic<int> in{0};
  std::atomic<int> most{0};
};
meeting_words& meeting() {
  static auto* words = static_cast<meeting_words*>(shared_page("meeting"));
  return *words;
}
asio::awaitable<int> meet(int want) {
  meeting_words& m = meeting();
  const int now = ++m.in;
  for (int seen = m.most.load(); now > seen && !m.most.compare_exchange_weak(seen, now);) {
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (m.most.load() < want && std::chrono::steady_clock::now() < deadline) {
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::deferred);
  }
  --m.in;
  co_return ::getpid();
}
// Waits on a timer for `ms`: ends early, with operation_aborted, when cancelled.
asio::awaitable<int> wait_ms(int ms) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::deferred);
  co_return ::getpid();
}
// Counts itself in (the worker has published it as running), then waits as wait_ms does.
asio::awaitable<int> count_in_and_wait(int ms) {
  ++meeting().in;
  co_return co_await wait_ms(ms);
}
// Announces itself, then never yields: a cancellation cannot reach it.
asio::awaitable<int> spin_coroutine(int) {
  started() = ::getpid();
  for (;;) std::atomic_signal_fence(std::memory_order_seq_cst);
  co_return 0;
}

// The start method the suite runs under: CTest runs it as is (fork) and again with
// HERD_TEST_START_METHOD=spawn and =forkserver (tests/CMakeLists.txt).
herd::start_method method_under_test() {
  const char* method = std::getenv("HERD_TEST_START_METHOD");
  const std::string_view name = method != nullptr ? method : "";
  return name == "spawn" ? herd::start_method::spawn
         : name == "forkserver" ? herd::start_method::forkserver
                                : herd::start_method::fork;
}

herd::pool_options small(std::size_t processes = 2) {
  herd::pool_options o;
  o.processes = processes;
  o.stop = herd::stop_policy{false, SIGTERM, 200ms};
  o.start_method = method_under_test();
  return o;
}

}  // namespace

TEST_CASE("pool: async_apply returns results and a worker's pid differs from ours") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small());
    CHECK(co_await pool.async_apply(square, 7) == 49);
    CHECK(co_await pool.async_apply(add, 2, 3) == 5);
    CHECK(co_await pool.async_apply(shout, "hi") == "hi!");  // text travels as std::string
    CHECK(co_await pool.async_apply([](int x) { return x + 1; }, 41) == 42);
    const point start{1, "a"};  // not a temporary in the co_await: g++ 12 destroys those twice
    const point p = co_await pool.async_apply(move_point, start, 2);
    CHECK(p.x == 3);
    CHECK(p.label == "a'");
    CHECK(co_await pool.async_apply(my_pid) != ::getpid());
    CHECK(co_await pool.async_apply(async_double, 21) == 42);  // a coroutine task
    co_await pool.async_apply(sleep_ms, 1);                    // void
    pool.close();
    co_await pool.async_join();
  });
}

TEST_CASE("pool: async_map keeps input order for every chunk size and empty input") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small());
    std::vector<int> input(1000);
    std::iota(input.begin(), input.end(), 0);
    for (std::size_t chunk : {0u, 1u, 7u, 999u, 5000u}) {
      const std::vector<int> out = co_await pool.async_map(square, input, {.chunksize = chunk});
      REQUIRE(out.size() == input.size());
      bool ordered = true;
      for (int i = 0; i < 1000; ++i) ordered &= out[i] == i * i;
      CHECK_MESSAGE(ordered, "chunksize ", chunk);
    }
    const std::vector<int> nothing;
    const std::vector<int> none = co_await pool.async_map(square, nothing);
    CHECK(none.empty());
    std::vector<std::tuple<int, int>> tuples;
    tuples.emplace_back(1, 2);
    tuples.emplace_back(3, 4);
    tuples.emplace_back(5, 6);
    const std::vector<int> sums = co_await pool.async_starmap(add, tuples);
    const std::vector<int> expected_sums{3, 7, 11};
    CHECK(sums == expected_sums);
  });
}

std::string reversed(std::string text) { return std::string(text.rbegin(), text.rend()); }

TEST_CASE("pool: messages far larger than a worker's link travel in parts both ways") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(2);
    options.link_bytes = 4096;  // the smallest link: everything here travels in parts
    herd::pool pool(ex, options);
    std::string big(5 * 1024 * 1024 + 13, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
    const std::string back = co_await pool.async_apply(reversed, big);
    CHECK(back == std::string(big.rbegin(), big.rend()));
    std::vector<int> input(1'000'000);
    std::iota(input.begin(), input.end(), 0);
    const std::vector<int> out = co_await pool.async_map(add_one, input);  // chunks of 125,000 ints
    REQUIRE(out.size() == input.size());
    CHECK(out.front() == 1);
    CHECK(out.back() == 1'000'000);
  });
}

TEST_CASE("pool: 100000 small tasks through submit all come back right") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small());
    std::vector<herd::pool_task<int>> tasks;
    tasks.reserve(100000);
    for (int i = 0; i < 100000; ++i) tasks.push_back(pool.submit(square, i % 1000));
    long long sum = 0, expected = 0;
    for (int i = 0; i < 100000; ++i) {
      sum += co_await tasks[i].async_get();
      expected += (i % 1000) * (i % 1000);
    }
    CHECK(sum == expected);
    const herd::pool_stats stats = pool.stats();
    CHECK(stats.done == 100000);
    CHECK(stats.failed == 0);
    CHECK(stats.queued == 0);
    CHECK(stats.running == 0);
  });
}

TEST_CASE("pool: imap yields results in order and imap_unordered each result once") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small());
    std::vector<int> input(200);
    std::iota(input.begin(), input.end(), 0);
    {
      auto stream = pool.imap(square, input, {.chunksize = 3});
      int expected = 0;
      while (auto r = co_await stream.async_next()) {
        CHECK(*r == expected * expected);
        ++expected;
      }
      CHECK(expected == 200);
    }
    {
      auto stream = pool.imap_unordered(square, input);
      std::multiset<int> seen;
      while (auto r = co_await stream.async_next()) seen.insert(*r);
      std::multiset<int> all;
      for (int i : input) all.insert(i * i);
      CHECK(seen == all);
    }
  });
}

namespace {
long long furthest_read = 0;  // how far imap has read the endless input

// An endless input: 0, 1, 2, … (never materialized).
struct counting {
  struct iterator {
    long long n = 0;
    long long operator*() const {
      furthest_read = std::max(furthest_read, n);
      return n;
    }
    iterator& operator++() {
      ++n;
      return *this;
    }
    bool operator!=(const iterator&) const { return true; }
  };
  iterator begin() const { return {}; }
  iterator end() const { return {}; }
};
long long plus_one(long long x) { return x + 1; }

}  // namespace

TEST_CASE("pool: imap over an endless input reads it lazily in bounded memory") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small());
    auto stream = pool.imap(plus_one, counting{}, {.chunksize = 16, .window = 8});
    long long expected = 1;
    long before = 0;
    long long ahead = 0;
    for (int i = 0; i < 200000; ++i) {
      auto r = co_await stream.async_next();
      REQUIRE(r);
      if (*r != expected) FAIL_CHECK("out of order at ", i);
      ++expected;
      ahead = std::max(ahead, furthest_read - i);
      if (i == 20000) before = herd_test::resident_kib();
    }
    // The input is read at most the window's chunks ahead of the reader.
    CHECK(ahead <= 8 * 16);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // (Sanitizers keep freed memory in quarantine, so RSS says nothing there.)
    const long growth = herd_test::resident_kib() - before;
    CHECK_MESSAGE(growth < 4096, "RSS grew by ", growth, " KiB");
#else
    (void)before;
#endif
    const herd::pool_stats stats = pool.stats();
    CHECK(stats.queued + stats.running <= 8);  // never more than the window
  });
}

TEST_CASE("pool: a task's exception comes back with its type message and pid and the worker goes on") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(1));
    const int pid = co_await pool.async_apply(my_pid);
    try {
      co_await pool.async_apply(throw_invalid, 3);
      FAIL("no exception");
    } catch (const herd::child_error& e) {
      CHECK(e.exception_type() == "std::invalid_argument");
      CHECK(e.exception_message() == "three is not allowed");
      CHECK(e.pid() == pid);
      CHECK_FALSE(e.function().empty());
      CHECK(std::string(e.what()).find(std::to_string(pid)) != std::string::npos);
    }
    CHECK(co_await pool.async_apply(my_pid) == pid);  // the same worker
    // In a map, the first failure is what is thrown.
    std::vector<int> input{1, 2, 3, 4};
    CHECK_THROWS_AS(co_await pool.async_map(throw_invalid, input, {.chunksize = 1}), herd::child_error);
  });
}

TEST_CASE("pool: a worker SIGKILLed under load fails only the task it ran and the pool serves on") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(2));
    std::vector<herd::pool_task<int>> tasks;
    for (int i = 0; i < 200; ++i) tasks.push_back(pool.submit(crash_if_negative, i == 57 ? -1 : i));
    int ok = 0, died = 0;
    for (int i = 0; i < 200; ++i) {
      try {
        const int value = co_await tasks[i].async_get();
        CHECK(value == i);
        ++ok;
      } catch (const herd::task_error& e) {
        CHECK(e.code() == herd::errc::worker_died);
        CHECK(i == 57);
        REQUIRE(e.status());
        CHECK(e.status()->signal() == SIGABRT);
        CHECK(e.pid() > 0);
        CHECK(std::string(e.what()).find("died") != std::string::npos);
        ++died;
      }
    }
    CHECK(ok == 199);
    CHECK(died == 1);
    CHECK(pool.stats().worker_restarts == 1);
    CHECK(pool.stats().workers.size() == 2);
    CHECK(co_await pool.async_apply(square, 5) == 25);
  });
}

TEST_CASE("pool: a worker killed from outside fails its running task and the next one succeeds") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    started() = 0;
    herd::pool pool(ex, small(1));
    auto slow = pool.submit(sleep_announced, 5000);
    const int victim = co_await until_started(ex);
    REQUIRE(victim == pool.stats().workers.at(0).pid);
    ::kill(victim, SIGKILL);
    try {
      co_await slow.async_get();
      FAIL("no failure");
    } catch (const herd::task_error& e) {
      CHECK(e.code() == herd::errc::worker_died);
      CHECK(e.pid() == victim);
      CHECK(e.status()->signal() == SIGKILL);
    }
    CHECK(co_await pool.async_apply(my_pid) != victim);
  });
}

// Not under AddressSanitizer+UBSan: its runtime needs descriptors of its own to check an object's
// type when an exception is made (a pipe to probe memory), and reports a false "invalid vptr" at
// this limit. The debug, release and TSan builds run it.
#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("pool: at the descriptor limit a dead worker's replacement waits and the pool serves again after") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(1));
    const int victim = co_await pool.async_apply(my_pid);
    rlimit saved{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit none = saved;
    none.rlim_cur = 3;  // no new descriptor at all: no memfd, eventfd or pidfd for a new worker
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &none) == 0);
    ::kill(victim, SIGKILL);
    auto task = pool.submit(square, 12);
    asio::steady_timer t(ex, 300ms);  // replacements fail and are retried meanwhile
    co_await t.async_wait(asio::deferred);
    CHECK_FALSE(task.ready());
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
    CHECK(co_await task.async_get() == 144);
    CHECK(pool.stats().worker_restarts >= 2);
    CHECK(co_await pool.async_apply(my_pid) != victim);
  });
}
#endif

TEST_CASE("pool: retries run a task lost to a death again and a poison task is quarantined") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(1);
    options.retries = 5;
    options.poison_after = 2;
    herd::pool pool(ex, options);
    try {
      co_await pool.async_apply(die_by_sigkill, 0);
      FAIL("no failure");
    } catch (const herd::task_error& e) {
      CHECK(e.code() == herd::errc::poison_task);
      CHECK(std::string(e.what()).find("quarantined") != std::string::npos);
    }
    const herd::pool_stats stats = pool.stats();
    CHECK(stats.retried == 1);
    CHECK(stats.worker_restarts == 2);
    CHECK(co_await pool.async_apply(square, 3) == 9);
  });
}

TEST_CASE("pool: task_timeout stops a task that spins forever and replaces its worker") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(1);
    options.task_timeout = 200ms;
    herd::pool pool(ex, options);
    const int before = co_await pool.async_apply(my_pid);
    const auto start = std::chrono::steady_clock::now();
    auto spinning = pool.async_apply(spin_forever, 0);
    const herd::error_code spun = co_await task_failure(std::move(spinning));
    CHECK(spun == herd::errc::timed_out);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 200ms);
    CHECK(took < 5s);
    CHECK(co_await pool.async_apply(my_pid) != before);
  });
}

TEST_CASE("pool: cancelling a queued task removes it and cancelling a running one replaces its worker") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    started() = 0;
    herd::pool pool(ex, small(1));
    const int before = co_await pool.async_apply(my_pid);
    auto running = pool.submit(spin_announced, 0);
    auto queued = pool.submit(square, 4);
    REQUIRE(co_await until_started(ex) == before);  // the worker has begun spinning
    CHECK(queued.cancel());
    CHECK_THROWS_AS(co_await queued.async_get(), herd::task_error);
    CHECK(running.cancel());
    const herd::error_code stopped = co_await task_failure(running.async_get());
    CHECK(stopped == asio::error::operation_aborted);
    CHECK(co_await pool.async_apply(my_pid) != before);
    // A timer racing async_apply: the loser is cancelled, and its task stopped, not left spinning.
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(ex, 100ms);
    const auto winner = co_await (pool.async_apply(spin_forever, 1) || timer.async_wait(asio::use_awaitable));
    CHECK(winner.index() == 1);
    // Its worker stopped (or the task withdrawn, if it had not begun): the pool holds nothing.
    const herd::pool_stats stats = co_await until_not(ex, pool, holds_tasks);
    CHECK(stats.running + stats.queued == 0);
  });
}

TEST_CASE("pool: with_timeout around async_apply stops the late task and the pool serves on") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(1));
    const int before = co_await pool.async_apply(my_pid);
    CHECK(co_await herd::with_timeout(pool.async_apply(square, 9), 10s) == 81);
    started() = 0;
    const auto start = std::chrono::steady_clock::now();
    try {
      co_await herd::with_timeout(pool.async_apply(spin_announced, 2), 200ms);
      FAIL("no timeout");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::timed_out);
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find("spin_announced") != std::string::npos);
      if (started() != 0) CHECK(what.find("while running in worker pid " + std::to_string(before)) != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    // The worker spinning for it was stopped and replaced (had it not begun, it was withdrawn).
    const int after = co_await pool.async_apply(my_pid);
    if (started() != 0) CHECK(after != before);
    const herd::pool_stats stats = co_await until_not(ex, pool, holds_tasks);
    CHECK(stats.running + stats.queued == 0);
  });
}

TEST_CASE("pool: concurrency_per_worker runs that many coroutine tasks at once in one worker and no more") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    meeting().in = 0;
    meeting().most = 0;
    auto options = small(1);
    options.concurrency_per_worker = 8;
    herd::pool pool(ex, options);
    std::vector<int> want(16, 8);
    // Sixteen tasks that each wait for eight to be in at once: without concurrency they could
    // only give up one by one after 10 s.
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int> pids = co_await pool.async_map(meet, want, {.chunksize = 1});
    CHECK(std::chrono::steady_clock::now() - start < 9s);
    CHECK(meeting().most.load() == 8);
    CHECK(std::set<int>(pids.begin(), pids.end()).size() == 1);
    // Chunks of coroutine tasks, plain functions and exceptions still work in such a worker.
    std::vector<int> xs(100);
    std::iota(xs.begin(), xs.end(), 0);
    const std::vector<int> doubled = co_await pool.async_map(async_double, xs, {.chunksize = 7});
    for (int i = 0; i < 100; ++i) CHECK(doubled[i] == 2 * i);
    CHECK(co_await pool.async_apply(square, 5) == 25);
    CHECK_THROWS_AS(co_await pool.async_apply(throw_invalid, 3), herd::child_error);
    CHECK(pool.stats().worker_restarts == 0);
  });
}

TEST_CASE("pool: cancelling or timing out one coroutine task leaves the others in its worker running") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(1);
    options.concurrency_per_worker = 4;
    options.task_timeout = 300ms;
    herd::pool pool(ex, options);
    const int pid = co_await pool.async_apply(my_pid);
    auto neighbour = pool.submit(wait_ms, 200);
    auto cancelled = pool.submit(wait_ms, 10000);
    auto late = pool.submit(wait_ms, 10000);
    asio::steady_timer settle(ex, 50ms);
    co_await settle.async_wait(asio::deferred);
    CHECK(cancelled.cancel());
    const herd::error_code aborted = co_await task_failure(cancelled.async_get());
    CHECK(aborted == asio::error::operation_aborted);
    CHECK(co_await neighbour.async_get() == pid);
    const herd::error_code timed_out = co_await task_failure(late.async_get());
    CHECK(timed_out == herd::errc::timed_out);
    // Its worker was not stopped for either: the same process answers.
    CHECK(co_await pool.async_apply(my_pid) == pid);
    const herd::pool_stats stats = co_await until_not(ex, pool, holds_tasks);
    CHECK(stats.running + stats.queued == 0);
  });
}

TEST_CASE("pool: a coroutine task that ignores its cancellation has its worker stopped after the grace") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    started() = 0;
    auto options = small(1);
    options.concurrency_per_worker = 4;
    herd::pool pool(ex, options);  // grace 200 ms
    const int pid = co_await pool.async_apply(my_pid);
    auto spinning = pool.submit(spin_coroutine, 0);
    REQUIRE(co_await until_started(ex) == pid);
    CHECK(spinning.cancel());
    CHECK_THROWS_AS(co_await spinning.async_get(), herd::task_error);
    // The worker was stopped (it could not be reached) and replaced.
    CHECK(co_await pool.async_apply(my_pid) != pid);
  });
}

TEST_CASE("pool: a concurrent worker SIGKILLed fails exactly the coroutine tasks it was running") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(1);
    options.concurrency_per_worker = 3;
    herd::pool pool(ex, options);
    const int pid = co_await pool.async_apply(my_pid);
    meeting().in = 0;
    std::vector<herd::pool_task<int>> tasks;
    for (int i = 0; i < 5; ++i) tasks.push_back(pool.submit(count_in_and_wait, 10000));
    // Three run (counted in, so published as running: a slow machine's worker may take its
    // time to begin them); two wait in the worker's inbox or the pool's queue.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (meeting().in.load() < 3 && std::chrono::steady_clock::now() < deadline) {
      asio::steady_timer t(ex, 5ms);
      co_await t.async_wait(asio::deferred);
    }
    REQUIRE(meeting().in.load() == 3);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int died = 0;
    for (int i = 0; i < 3; ++i)
      if (co_await task_failure(tasks[i].async_get()) == herd::errc::worker_died) ++died;
    CHECK(died == 3);
    // The two that had not started run on the replacement; it is cancelled to end the test.
    CHECK_FALSE(tasks[3].ready());
    CHECK(tasks[3].cancel());
    CHECK(tasks[4].cancel());
  });
}

TEST_CASE("pool: concurrency_per_worker outside 1 to 64 is refused naming the value") {
  for (const std::size_t bad : {std::size_t{0}, std::size_t{65}}) {
    herd::pool_options options = small(1);
    options.concurrency_per_worker = bad;
    try {
      herd::pool pool(options);
      FAIL("accepted");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::invalid_argument);
      CHECK(std::string(e.what()).find("concurrency_per_worker is " + std::to_string(bad)) != std::string::npos);
    }
  }
}

TEST_CASE("pool: max_tasks_per_child rotates the workers' pids") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(2);
    options.max_tasks_per_child = 4;
    herd::pool pool(ex, options);
    std::set<int> pids;
    for (int i = 0; i < 40; ++i) pids.insert(co_await pool.async_apply(my_pid));
    CHECK(pids.size() >= 10);  // at most 4 tasks each
    CHECK(pool.stats().worker_restarts == 0);  // recycling is no death
  });
}

TEST_CASE("pool: an initializer sets per-worker state and a failing one fails every task with its message") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    {
      // A captureless lambda travels to every start method.
      auto options = small(2);
      options.initializer = [] { set_worker_setting(42); };
      herd::pool pool(ex, options);
      CHECK(co_await pool.async_apply(read_worker_setting) == 42);
    }
    {
      // Python's initializer with initargs: the arguments travel encoded.
      auto options = small(2);
      options.initializer = {set_worker_setting, 7};
      herd::pool pool(ex, options);
      CHECK(co_await pool.async_apply(read_worker_setting) == 7);
    }
    {
      // A lambda with captures runs in forked workers, and is refused, named, by the others.
      const int value = 9;
      auto options = small(2);
      options.initializer = [value] { set_worker_setting(value); };
      if (method_under_test() == herd::start_method::fork) {
        herd::pool pool(ex, options);
        CHECK(co_await pool.async_apply(read_worker_setting) == 9);
      } else {
        try {
          herd::pool pool(ex, options);
          FAIL("accepted");
        } catch (const boost::system::system_error& e) {
          CHECK(e.code() == herd::errc::invalid_argument);
          CHECK(std::string(e.what()).find("initializer") != std::string::npos);
          CHECK(std::string(e.what()).find("lambda") != std::string::npos);
        }
      }
    }
    auto options = small(2);
    options.initializer = [] { throw std::runtime_error("no database"); };
    herd::pool pool(ex, options);
    for (int i = 0; i < 3; ++i) {
      try {
        co_await pool.async_apply(square, i);
        FAIL("no failure");
      } catch (const herd::task_error& e) {
        CHECK(e.code() == herd::errc::initializer_failed);
        CHECK(std::string(e.what()).find("no database") != std::string::npos);
      }
    }
  });
}

TEST_CASE("pool: a forked worker sees the parent's memory and a spawned one starts clean") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    parent_mark = 7;
    herd::pool pool(ex, small(1));
    const int seen = co_await pool.async_apply(read_parent_mark);
    CHECK(seen == (method_under_test() == herd::start_method::fork ? 7 : 0));
    // Coroutine tasks and map chunks travel the same way.
    CHECK(co_await pool.async_apply(async_double, 21) == 42);
    std::vector<int> xs{1, 2, 3};
    const std::vector<int> squares = co_await pool.async_map(square, xs);
    CHECK(squares == std::vector<int>{1, 4, 9});
    parent_mark = 0;
  });
}

TEST_CASE("pool: a killed forkserver is started again at the next worker start and its workers serve on") {
  herd::detail::forkserver_ready();  // its socket is this process's for good: before the count
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    auto options = small(1);
    options.start_method = herd::start_method::forkserver;
    herd::pool first(ex, options);
    const int worker = co_await first.async_apply(my_pid);
    const int server = herd::detail::forkserver_pid();
    REQUIRE(server > 0);
    CHECK(worker != server);
    ::kill(server, SIGKILL);
    CHECK(herd_test::wait_until_gone(server));
    // Its worker is the application's child, not the server's: it lives on.
    CHECK(co_await first.async_apply(my_pid) == worker);
    herd::pool second(ex, options);
    CHECK(co_await second.async_apply(square, 3) == 9);
    CHECK(herd::detail::forkserver_pid() != server);
    CHECK(herd::detail::forkserver_pid() > 0);
  });
}

TEST_CASE("pool: terminate with tasks in flight fails them and leaves nothing running") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(2));
    std::vector<herd::pool_task<int>> tasks;
    for (int i = 0; i < 10; ++i) tasks.push_back(pool.submit(spin_forever, i));
    asio::steady_timer t(ex, 50ms);
    co_await t.async_wait(asio::deferred);
    pool.terminate();
    int aborted = 0, closed = 0;
    for (auto& task : tasks) {
      try {
        co_await task.async_get();
      } catch (const herd::task_error& e) {
        if (e.code() == asio::error::operation_aborted) ++aborted;
        if (e.code() == herd::errc::closed) ++closed;
      }
    }
    CHECK(aborted == 2);
    CHECK(closed == 8);
    co_await pool.async_join();
    CHECK_THROWS_AS(pool.submit(square, 1), boost::system::system_error);
  });
}

TEST_CASE("pool: a cancelled async_join only stops waiting and a later join completes") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(1));
    auto task = pool.submit(sleep_then_pid, 300);
    auto [early] = co_await pool.async_join(asio::as_tuple(asio::deferred));
    CHECK(early == herd::errc::invalid_argument);  // before close(), as Python raises
    pool.close();
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer timer(ex, 50ms);
    const auto winner = co_await (pool.async_join(asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
    CHECK(winner.index() == 1);
    co_await pool.async_join();
    CHECK(task.ready());
    CHECK(co_await task.async_get() > 0);
  });
}

TEST_CASE("pool: the destructor with tasks in flight stops every worker") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    std::optional<herd::pool_task<int>> task;
    {
      herd::pool pool(ex, small(2));
      task.emplace(pool.submit(spin_forever, 0));
      asio::steady_timer t(ex, 20ms);
      co_await t.async_wait(asio::deferred);
    }
    CHECK_THROWS_AS(co_await task->async_get(), herd::task_error);
  });
}

TEST_CASE("pool: submit and get with a timeout like Python's AsyncResult and the pool stays usable") {
  leak_check leaks;
  herd::pool pool(small(2));  // its own event loop
  auto task = pool.submit(square, 10);
  CHECK(task.get(1s) == 100);
  CHECK(task.ready());
  auto slow = pool.submit(sleep_then_pid, 10000);
  try {
    slow.get(100ms);
    FAIL("no timeout");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == herd::errc::timed_out);
  }
  CHECK_FALSE(slow.ready());
  CHECK(pool.apply(square, 6) == 36);
  std::vector<int> input{1, 2, 3};
  CHECK(pool.map(square, input) == std::vector<int>{1, 4, 9});
  auto stream = pool.imap(square, input);
  CHECK(stream.next() == 1);
  CHECK(stream.next() == 4);
  CHECK(stream.next(1s) == 9);
  CHECK_FALSE(stream.next().has_value());
}

TEST_CASE("pool: blocking forms work from a thread that does not run the loop and fail clearly on it") {
  leak_check leaks;
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread loop([&] { io.run(); });
  {
    herd::pool pool(io.get_executor(), small(2));
    CHECK(pool.apply(square, 9) == 81);
    std::promise<std::string> what;
    asio::post(io, [&] {
      try {
        pool.apply(square, 1);
        what.set_value("no error");
      } catch (const boost::system::system_error& e) {
        what.set_value(e.what());
      }
    });
    CHECK(what.get_future().get().find("event loop") != std::string::npos);
    pool.close();
    pool.join();
  }
  guard.reset();
  loop.join();
}

TEST_CASE("pool: used from four io_context threads at once") {
  leak_check leaks;
  asio::io_context io(4);
  std::atomic<int> good{0}, finished{0};
  herd::pool pool(io.get_executor(), small(2));
  for (int c = 0; c < 8; ++c)
    asio::co_spawn(
        io,
        [&pool, &good, &finished, c]() -> asio::awaitable<void> {
          for (int i = 0; i < 200; ++i)
            if (co_await pool.async_apply(add, c, i) == c + i) ++good;
          if (++finished == 8) {
            CHECK(pool.stats().done == 8 * 200);
            pool.close();  // the loop ends once the workers have left
          }
        },
        asio::detached);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { io.run_for(60s); });
  for (auto& t : threads) t.join();
  CHECK(good == 8 * 200);
}

TEST_CASE("pool: a pool with its own loop destroyed by a handler on that loop returns and ends by itself") {
  leak_check leaks;
  const int fds = herd_test::count_open_fds();
  auto* pool = new herd::pool(small(1));
  const int worker = pool->apply(my_pid);
  std::atomic<bool> destroyed{false};
  asio::post(pool->get_executor(), [pool, &destroyed] {
    delete pool;  // on the pool's own loop thread: it must not wait for itself
    destroyed = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!destroyed && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(destroyed);
  CHECK(herd_test::wait_until_gone(worker));
  // The loop reaps the worker, closes the pool's descriptors and frees itself.
  while ((!herd_test::child_pids().empty() || herd_test::count_open_fds() != fds) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
}

TEST_CASE("pool: a moved-from pool and task handle report not_running and close is a no-op") {
  leak_check leaks;
  herd_test::run([](auto ex) -> asio::awaitable<void> {
    herd::pool pool(ex, small(1));
    herd::pool other = std::move(pool);
    CHECK_FALSE(pool.valid());
    pool.close();
    pool.terminate();
    CHECK_THROWS_AS(pool.submit(square, 1), boost::system::system_error);
    CHECK_THROWS_AS(pool.stats(), boost::system::system_error);
    auto [ec] = co_await pool.async_join(asio::as_tuple(asio::deferred));
    CHECK(ec == herd::errc::not_running);
    auto task = other.submit(square, 2);
    auto moved = std::move(task);
    CHECK_FALSE(task.valid());
    CHECK_THROWS_AS(task.get(), boost::system::system_error);
    CHECK(co_await moved.async_get() == 4);
  });
}
