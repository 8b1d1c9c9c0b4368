#include <herd/detail/deadline.hpp>

namespace herd::detail {

deadline deadline_after(std::optional<std::chrono::milliseconds> timeout) noexcept {
  if (!timeout || *timeout > std::chrono::hours(24 * 365 * 100)) return std::nullopt;
  return std::chrono::steady_clock::now() + *timeout;
}

bool deadline_passed(const deadline& deadline, deadline_clock::time_point now) noexcept {
  return deadline && now >= *deadline;
}

countdown::countdown(std::chrono::milliseconds timeout) noexcept : end_(std::chrono::steady_clock::now() + timeout) {}

std::chrono::milliseconds countdown::left() const noexcept {
  return std::chrono::ceil<std::chrono::milliseconds>(end_ - std::chrono::steady_clock::now());
}

}  // namespace herd::detail
