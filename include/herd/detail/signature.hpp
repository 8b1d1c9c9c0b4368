// The completion signature of a deferred operation (Asio 1.26 has no completion_signature_of).
#pragma once

#include <herd/config.hpp>

#include <type_traits>

namespace herd::detail {

template <typename Op>
struct deferred_signature {
  static_assert(sizeof(Op) == 0,
                "herd: pass a deferred operation, e.g. with_timeout(q.async_get(), 1s) or "
                "with_timeout(timer.async_wait(asio::deferred), 1s)");
};

template <typename Signature, typename Initiation, typename... InitArgs>
struct deferred_signature<asio::deferred_async_operation<Signature, Initiation, InitArgs...>> {
  using type = Signature;
};

template <typename Op>
using deferred_signature_t = typename deferred_signature<std::decay_t<Op>>::type;

}  // namespace herd::detail
