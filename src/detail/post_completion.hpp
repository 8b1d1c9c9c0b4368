// Completing an asynchronous operation the way Asio requires: never inline in the initiating call.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace herd::detail {

/// Completes `handler` through `io_executor` with `post` (never inline in the initiating call),
/// on the handler's own associated executor.
template <typename Handler, typename... Args>
void post_completion(const asio::any_io_executor& io_executor, Handler&& handler, Args&&... args) {
  asio::post(io_executor, asio::append(std::forward<Handler>(handler), std::forward<Args>(args)...));
}

}  // namespace herd::detail
