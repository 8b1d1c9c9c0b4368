// When a blocking operation with a timeout gives up: one rule for channels and synchronization.
#pragma once

#include <herd/detail/chrono.hpp>

#include <optional>

namespace herd::detail {

using deadline = std::optional<std::chrono::steady_clock::time_point>;

/// `timeout` from now; none (wait forever) without a timeout, or beyond a century, which would
/// overflow the clock. Compiled in src/ (its clock arithmetic is not every includer's business).
deadline deadline_after(std::optional<std::chrono::milliseconds> timeout);

}  // namespace herd::detail
