#include <herd/detail/deadline.hpp>

namespace herd::detail {

deadline deadline_after(std::optional<std::chrono::milliseconds> timeout) {
  if (!timeout || *timeout > std::chrono::hours(24 * 365 * 100)) return std::nullopt;
  return std::chrono::steady_clock::now() + *timeout;
}

}  // namespace herd::detail
