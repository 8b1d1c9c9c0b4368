#include "process_hooks.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <mutex>

namespace herd::detail {
namespace {

constexpr std::size_t moments = 3;
constexpr std::size_t hooks_per_moment = 8;

struct hook_list {
  std::array<std::atomic<process_hook>, hooks_per_moment> hooks{};
  std::atomic<std::size_t> count{0};
};

std::array<hook_list, moments>& lists() noexcept {
  static std::array<hook_list, moments> all;
  return all;
}

std::mutex& adding() noexcept {
  static std::mutex lock;
  return lock;
}

}  // namespace

void add_process_hook(process_moment moment, process_hook hook) noexcept {
  std::lock_guard guard(adding());
  hook_list& list = lists()[static_cast<std::size_t>(moment)];
  const std::size_t n = list.count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i)
    if (list.hooks[i].load(std::memory_order_relaxed) == hook) return;
  if (n == hooks_per_moment) std::abort();
  list.hooks[n].store(hook, std::memory_order_relaxed);
  list.count.store(n + 1, std::memory_order_release);
}

void run_process_hooks(process_moment moment) noexcept {
  hook_list& list = lists()[static_cast<std::size_t>(moment)];
  const std::size_t n = list.count.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) list.hooks[i].load(std::memory_order_relaxed)();
}

}  // namespace herd::detail
