// A function child holds none of the parent's descriptors that belong to other children (program
// stdio pipes, pidfds, outcome sockets): fork copies every descriptor, CLOEXEC or not, and a copy
// of a program's stdin write end keeps that program from ever reading end of file.
#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/herd.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

// Every open descriptor of this process and what it is ("pipe:[…]", "anon_inode:[pidfd]", …).
std::map<int, std::string> open_descriptors() {
  std::map<int, std::string> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec);
    fds[std::stoi(entry.path().filename().string())] = ec ? "?" : target.string();
  }
  return fds;
}

bool is_herd_kind(const std::string& target) {
  return target.starts_with("pipe:") || target.starts_with("socket:") || target == "anon_inode:[pidfd]";
}

}  // namespace

TEST_SUITE("process") {
  TEST_CASE("a program's stdin reaches end of file while an unrelated function child lives") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::command cmd(HERD_TEST_CHILD, "stdin-eof");
      cmd.std_in(herd::stdio::pipe()).std_out(herd::stdio::pipe());
      herd::child program(ex, cmd);
      CHECK(co_await program.std_out().async_read_line() == "ready");
      auto bystander = herd::start(ex, [] { ::sleep(30); });
      program.close_stdin();
      auto [ec, line] = co_await herd::with_timeout(program.std_out().async_read_line(), 5s,
                                                    asio::as_tuple(asio::deferred));
      CHECK_MESSAGE(!ec, "the program saw no end of file: " << ec.message());
      CHECK(line == "eof");
      CHECK((co_await program.async_wait()).success());
      co_await bystander.async_stop();
    });
  }

  TEST_CASE("a function child holds no pipe, pidfd or outcome socket of the parent's other children") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      const auto before = open_descriptors();
      herd::command cmd(HERD_TEST_CHILD, "stdin-eof");
      cmd.std_in(herd::stdio::pipe()).std_out(herd::stdio::pipe()).std_err(herd::stdio::pipe());
      herd::child program(ex, cmd);
      auto other = herd::start(ex, [] { ::sleep(30); });
      auto lister = herd::start(ex, [] {
        std::vector<std::string> kinds;
        for (const auto& [fd, target] : open_descriptors()) kinds.push_back(std::to_string(fd) + " " + target);
        return kinds;
      });
      const std::vector<std::string> in_child = co_await lister.async_result();
      int extra_sockets = 0;
      for (const std::string& line : in_child) {
        const int fd = std::stoi(line);
        const std::string target = line.substr(line.find(' ') + 1);
        if (!is_herd_kind(target)) continue;
        const auto it = before.find(fd);
        if (it != before.end() && it->second == target) continue;  // the parent had it before: not herd's
        if (target.starts_with("socket:") && extra_sockets++ == 0) continue;  // its own outcome socket
        FAIL_CHECK("the function child holds the parent's " << line);
      }
      program.close_stdin();
      co_await program.async_wait();
      co_await other.async_stop();
    });
  }

  TEST_CASE("programs streaming on four threads while other threads fork function children all see end of file") {
    leak_check guard;
    asio::thread_pool pool(4);
    // Each coroutine on a strand of its own (herd's objects, like Asio's, are not for concurrent
    // use); the strands run on the pool's four threads.
    std::atomic<int> slow{0}, failed{0}, runs{0};
    std::atomic<bool> forking{true};
    // Two coroutines fork children that live long, as fast as they can, while four run short
    // programs: a child forked while a program's pipes exist in this process would keep one.
    auto forker = [&](asio::any_io_executor ex) -> asio::awaitable<void> {
      std::vector<herd::process<void>> kept;
      asio::steady_timer t(ex);
      while (forking && kept.size() < 30) {
        kept.push_back(herd::start(ex, [] { ::sleep(8); }));
        t.expires_after(1ms);
        co_await t.async_wait(asio::deferred);
      }
      while (forking) {
        t.expires_after(5ms);
        co_await t.async_wait(asio::deferred);
      }
      for (auto& p : kept) co_await p.async_stop();
    };
    auto runner = [&](asio::any_io_executor ex) -> asio::awaitable<void> {
      for (int i = 0; i < 40; ++i) {
        herd::command cmd(HERD_TEST_CHILD, "echo");
        cmd.std_in(herd::stdio::bytes("hi\n"));
        const auto start = std::chrono::steady_clock::now();
        auto [ec, result] = co_await herd::async_run(ex, cmd, asio::as_tuple(asio::deferred));
        if (ec || result.std_out != "hi\n") ++failed;
        if (std::chrono::steady_clock::now() - start > 3s) ++slow;
        ++runs;
      }
    };
    std::vector<std::future<void>> done;
    for (int i = 0; i < 2; ++i) {
      asio::any_io_executor strand = asio::make_strand(pool);
      done.push_back(asio::co_spawn(strand, forker(strand), asio::use_future));
    }
    std::vector<std::future<void>> ran;
    for (int i = 0; i < 4; ++i) {
      asio::any_io_executor strand = asio::make_strand(pool);
      ran.push_back(asio::co_spawn(strand, runner(strand), asio::use_future));
    }
    for (auto& f : ran) f.get();
    forking = false;
    for (auto& f : done) f.get();
    pool.join();
    CHECK(runs == 160);
    CHECK(failed == 0);
    CHECK_MESSAGE(slow == 0, slow.load() << " runs waited for an unrelated child to end");
  }
}
