// Heartbeats and readiness from supervised children: a shared memory page in the supervisor,
// one slot per child, which the child finds through an environment variable naming the page
// ("/proc/<supervisor pid>/fd/<memfd>:<slot>": a forked, spawned or exec'd child opens it alike).
#pragma once

#include "unique_fd.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace herd::detail {

struct alignas(64) liveness_slot {
  std::atomic<std::int64_t> beat_ns{0};  // the child's last heartbeat, steady clock; 0: none
  std::atomic<std::uint32_t> ready{0};
};

/// The supervisor's page; made only when a spec watches heartbeats or readiness.
class liveness_page {
 public:
  liveness_page() = default;
  explicit liveness_page(std::size_t slots);  // throws system_error
  liveness_page(liveness_page&&) noexcept;
  liveness_page& operator=(liveness_page&&) noexcept;
  ~liveness_page();

  explicit operator bool() const noexcept { return slots_ != nullptr; }
  liveness_slot& slot(std::size_t i) noexcept { return slots_[i]; }
  /// Clears slot `i` for a new run of its child.
  void reset(std::size_t i) noexcept;
  /// The environment variable's value that leads a child to slot `i`.
  std::string variable(std::size_t i) const;

 private:
  unique_fd memfd_;
  liveness_slot* slots_ = nullptr;
  std::size_t count_ = 0;
};

/// The steady clock in nanoseconds, as both sides read it.
std::int64_t liveness_now_ns() noexcept;

}  // namespace herd::detail
