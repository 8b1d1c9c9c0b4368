// The completion signature of a deferred operation (Asio 1.26 has no completion_signature_of).
#pragma once

#include <herd/config.hpp>
#include <herd/detail/described.hpp>

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

// A described operation (described.hpp) is seen with its own `void(error_code, R)` signature.
template <typename R, typename Initiation, typename... InitArgs>
struct deferred_signature<
    asio::deferred_async_operation<void(std::exception_ptr, R), describing_initiation<Initiation>, InitArgs...>> {
  using type = void(error_code, R);
};

template <typename Op>
using deferred_signature_t = typename deferred_signature<std::decay_t<Op>>::type;

// Asked of any type (with_timeout's default token is chosen before its overloads are): only a
// described deferred operation is one.
template <typename Op>
struct is_described : std::false_type {};
template <typename R, typename Initiation, typename... InitArgs>
struct is_described<
    asio::deferred_async_operation<void(std::exception_ptr, R), describing_initiation<Initiation>, InitArgs...>>
    : std::true_type {};

template <typename Op>
inline constexpr bool is_described_v = is_described<std::decay_t<Op>>::value;

// A described operation passed on keeps its described default.
template <typename Op>
using default_token_for = std::conditional_t<is_described_v<Op>, described_deferred_t, default_token>;

}  // namespace herd::detail
