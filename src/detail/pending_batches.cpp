#include "pending_batches.hpp"

#include "channel_state.hpp"
#include "fork_lock.hpp"
#include "process_hooks.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace herd::detail {
namespace {

struct pending_registry {
  std::mutex lock;
  pid_t owner = 0;
  std::vector<channel::state*> channels;
  // channels.size(), readable without the lock: every receive asks, and almost always it is 0.
  // A forked copy may show the parent's count; the locked path then finds the owner stale.
  std::atomic<std::size_t> count{0};
};

pending_registry& pending() {
  static auto* registry = new pending_registry;  // never destroyed: flushed at exit
  return *registry;
}

}  // namespace

void remember_pending(channel::state* s) {
  static std::once_flag at_exit;
  std::call_once(at_exit, [] {
    // Rule 5, and a batch never waits for a sender that waits: it leaves before herd waits for
    // a child, before a fork (the child must not send it again), as a function child exits,
    // and at this process's exit.
    for (auto moment : {process_moment::before_wait, process_moment::before_fork, process_moment::child_exit})
      add_process_hook(moment, flush_all_channels);
    std::atexit(flush_all_channels);
  });
  auto& r = pending();
  std::lock_guard guard(r.lock);
  if (r.owner != current_pid()) {
    r.channels.clear();
    r.owner = current_pid();
  }
  if (std::find(r.channels.begin(), r.channels.end(), s) == r.channels.end()) r.channels.push_back(s);
  r.count.store(r.channels.size(), std::memory_order_relaxed);
}

void forget_pending(channel::state* s) noexcept {
  auto& r = pending();
  std::lock_guard guard(r.lock);
  std::erase(r.channels, s);
  r.count.store(r.channels.size(), std::memory_order_relaxed);
}

void flush_all_channels() noexcept {
  auto& r = pending();
  if (r.count.load(std::memory_order_relaxed) == 0) return;
  std::vector<channel::state*> channels;
  {
    std::lock_guard guard(r.lock);
    if (r.owner != current_pid()) {
      r.channels.clear();
      r.count.store(0, std::memory_order_relaxed);
      r.owner = current_pid();
    }
    channels = r.channels;
  }
  for (auto* s : channels) {
    try {
      s->flush_batch(true);
    } catch (...) {
    }
  }
}

}  // namespace herd::detail
