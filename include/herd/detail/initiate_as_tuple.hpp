// async_initiate with the token of herd's awaitable forms that fail with an exception_ptr.
#pragma once

#include <herd/config.hpp>

#include <utility>

namespace herd::detail {

/// async_initiate with the token of the awaitable forms, as_tuple(deferred): the failure comes
/// first as an exception_ptr, which Asio 1.26 cannot co_await through deferred alone (see
/// process::async_result). async_initiate takes its token by lvalue reference, hence the local.
template <typename Signature, typename Initiation, typename... Values>
auto initiate_as_tuple(Initiation&& initiation, Values&&... values) {
  auto token = asio::as_tuple(asio::deferred);
  return asio::async_initiate<decltype(token), Signature>(std::forward<Initiation>(initiation), token,
                                                          std::forward<Values>(values)...);
}

}  // namespace herd::detail
