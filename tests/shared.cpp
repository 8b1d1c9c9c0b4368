#include <herd/shared.hpp>  // first: the header stands alone

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <herd/process.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <ranges>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
using herd_test::leak_check;

namespace {

struct position {  // 24 bytes: not lock-free, so load and store take the lock
  double x, y, z;
};

// The inode of each mapping of this process, with its address range. Every anonymous shared
// mapping has an inode of its own, so a test can check the object, not the address: once
// unmapped, an address may be given to another mapping (ASan's allocator does so).
template <typename Visit>
void each_mapping(Visit visit) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::uintptr_t from = 0, to = 0;
    unsigned long inode = 0;
    char perms[8], offset[32], device[16];
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %31s %15s %lu", &from, &to, perms, offset, device, &inode) == 6)
      visit(from, to, inode);
  }
}

unsigned long mapping_at(const void* address) {
  const auto where = reinterpret_cast<std::uintptr_t>(address);
  unsigned long found = 0;
  each_mapping([&](std::uintptr_t from, std::uintptr_t to, unsigned long inode) {
    if (where >= from && where < to) found = inode;
  });
  return found;
}

bool still_mapped(unsigned long inode) {
  bool found = false;
  each_mapping([&](std::uintptr_t, std::uintptr_t, unsigned long i) { found = found || i == inode; });
  return found;
}

}  // namespace

TEST_SUITE("shared") {
  TEST_CASE("a child's changes to a shared value and array are seen by the parent") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::shared_value<double> num(ex, 0.0);
      herd::shared_array<int> arr(ex, std::views::iota(0, 10));
      CHECK(arr.size() == 10);
      auto child = herd::start(ex, [num, arr]() mutable {
        num = 3.1415927;
        for (int& a : arr) a = -a;
      });
      co_await child.async_join();
      CHECK(num.load() == 3.1415927);
      CHECK(arr.to_vector() == std::vector<int>{0, -1, -2, -3, -4, -5, -6, -7, -8, -9});
    });
  }

  TEST_CASE("atomic operations: exchange, compare_exchange, fetch_ ops") {
    asio::io_context io;
    herd::shared_value<int> v(io.get_executor(), 5);
    static_assert(herd::shared_value<int>::is_atomic);
    CHECK(v.exchange(7) == 5);
    int expected = 6;
    CHECK_FALSE(v.compare_exchange(expected, 9));
    CHECK(expected == 7);
    CHECK(v.compare_exchange(expected, 9));
    CHECK(v.fetch_add(1) == 9);
    CHECK(v.fetch_sub(2) == 10);
    CHECK(v.fetch_or(0x10) == 8);
    CHECK(v.fetch_and(0x10) == 0x18);
    CHECK(v.fetch_xor(0x11) == 0x10);
    CHECK(v == 1);
    herd::shared_value<double> d(io.get_executor(), 1.5);
    CHECK(d.fetch_add(1.0) == 1.5);
    CHECK(d.load() == 2.5);
  }

  TEST_CASE("a value too large for an atomic is loaded and stored under its lock, whole") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      static_assert(!herd::shared_value<position>::is_atomic);
      herd::shared_value<position> p(ex, position{0, 0, 0});
      // Two writers store consistent triples; a reader must never see a torn one.
      std::vector<herd::process<bool>> children;
      for (int w = 1; w <= 2; ++w)
        children.push_back(herd::start(ex, [p, w]() mutable {
          for (int i = 0; i < 20'000; ++i) p.store({double(w), double(w), double(w)});
          return true;
        }));
      children.push_back(herd::start(ex, [p]() mutable {
        for (int i = 0; i < 20'000; ++i) {
          const position seen = p.load();
          if (seen.x != seen.y || seen.y != seen.z) return false;
        }
        return true;
      }));
      for (auto& c : children) CHECK(co_await c.async_result());
    });
  }

  TEST_CASE("Python's pattern: load and store under get_lock() make one locked update") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::shared_value<position> p(ex, position{0, 0, 0});
      herd::shared_value<long> n(ex, 0);
      std::vector<herd::process<void>> children;
      for (int w = 0; w < 2; ++w)
        children.push_back(herd::start(ex, [p, n]() mutable {
          for (int i = 0; i < 5'000; ++i) {
            herd::lock_guard held(p.get_lock());  // re-entered by load() and store()
            position v = p.load();
            v.x += 1;
            v.z += 2;
            p.store(v);
            herd::lock_guard also(n.get_lock());
            n.store(n.load() + 1);  // atomic loads and stores, one locked step
          }
        }));
      for (auto& c : children) {
        const herd::exit_status status = co_await c.async_join();
        CHECK(status.success());
      }
      CHECK(p.load().x == 10'000);
      CHECK(p.load().z == 20'000);
      CHECK(n.load() == 10'000);
    });
  }

  TEST_CASE("arrays: initializer lists, bounds, spans, slices, element atomics") {
    asio::io_context io;
    herd::shared_array<long> a(io.get_executor(), {1, 2, 3, 4, 5});
    CHECK(a.size() == 5);
    CHECK(a[2] == 3);
    CHECK_THROWS_AS(a.at(5), std::out_of_range);
    auto middle = a.subspan(1, 3);  // Python's a[1:4]
    CHECK(middle.size() == 3);
    middle[0] = 20;
    CHECK(a[1] == 20);  // the same memory
    CHECK(a.subspan(4, 10).size() == 1);
    CHECK(a.subspan(9).empty());
    CHECK(a.fetch_add(0, 10) == 1);
    CHECK(a.load(0) == 11);
    a.store(4, 50);
    CHECK(a.span().back() == 50);
    herd::shared_array<double> zeros(io.get_executor(), 3);
    CHECK(zeros.to_vector() == std::vector<double>{0, 0, 0});
    herd::shared_array<int> empty(io.get_executor(), 0);
    CHECK(empty.empty());
    CHECK(empty.begin() == empty.end());
  }

  TEST_CASE("a shared string holds up to its capacity and refuses more, keeping what it had") {
    leak_check guard;
    herd_test::run([](asio::any_io_executor ex) -> asio::awaitable<void> {
      herd::shared_string<16> s(ex, "hello");
      CHECK(s.load() == "hello");
      auto child = herd::start(ex, [s]() mutable { s.store("from the child"); });
      co_await child.async_join();
      CHECK(s.load() == "from the child");
      CHECK_THROWS_WITH_AS(s.store("seventeen bytes!!"), doctest::Contains("do not fit its capacity of 16"),
                           boost::system::system_error);
      CHECK(std::string(s) == "from the child");
      s = "";
      CHECK(s.load().empty());
      CHECK_THROWS_AS(herd::shared_string<2>(ex, "abc"), boost::system::system_error);
    });
  }

  TEST_CASE("shared memory goes with the last handle in this process") {
    leak_check guard;
    asio::io_context io;
    unsigned long array_memory = 0;
    unsigned long value_memory = 0;
    {
      herd::shared_array<char> big(io.get_executor(), 1 << 20, 'x');
      herd::shared_value<int> v(io.get_executor(), 1);
      array_memory = mapping_at(big.data());
      value_memory = mapping_at(v.get());
      REQUIRE(array_memory != 0);
      REQUIRE(value_memory != 0);
      {
        auto copy = big;  // same memory
        copy[0] = 'y';
      }
      CHECK(big[0] == 'y');
      CHECK(still_mapped(array_memory));
      CHECK(still_mapped(value_memory));
    }
    CHECK_FALSE(still_mapped(array_memory));
    CHECK_FALSE(still_mapped(value_memory));
  }
}
