// Several coroutines awaited together: all start at once; the first failure cancels the others
// and is rethrown once every one has ended; cancelling the await cancels them all.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/awaitable.hpp>

#include <vector>

namespace herd::detail {

/// Runs every coroutine of `work` on `ex` at once and completes when all have ended. Rethrows
/// the first exception one of them threw (the others are cancelled at once, terminal); if the
/// awaiting coroutine is cancelled, they are all cancelled and `operation_aborted` is thrown once
/// they have ended.
asio::awaitable<void> await_all(asio::any_io_executor ex, std::vector<asio::awaitable<void>> work);

}  // namespace herd::detail
