// When a blocking operation with a timeout gives up: one rule for channels and synchronization.
#pragma once

#include <herd/detail/chrono.hpp>

#include <optional>

namespace herd::detail {

using deadline_clock = std::chrono::steady_clock;
using deadline = std::optional<deadline_clock::time_point>;

/// `timeout` from now; none (wait forever) without a timeout, or beyond a century, which would
/// overflow the clock. Compiled in src/ (its clock arithmetic is not every includer's business).
deadline deadline_after(std::optional<std::chrono::milliseconds> timeout) noexcept;

/// True once `deadline` has come at `now` (the wait ends with errc::timed_out); never without one.
bool deadline_passed(const deadline& deadline, deadline_clock::time_point now) noexcept;

/// What is left of a timeout, for a loop of waits (condition::wait_for), without clock
/// arithmetic in the includer: compiled in src/.
class countdown {
 public:
  explicit countdown(std::chrono::milliseconds timeout) noexcept;
  /// Rounded up (a truncated wait would wake early); zero or less once the time has passed.
  std::chrono::milliseconds left() const noexcept;

 private:
  std::chrono::steady_clock::time_point end_;
};

}  // namespace herd::detail
