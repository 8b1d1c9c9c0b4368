// A completion handler that turns the signature of an erased operation in src/ into the one its
// caller asked for, and keeps every association of the caller's handler (executor, cancellation
// slot, allocator): herd's templates wrap the user's handler in it before it is type-erased.
// One associator specialization instead of bind_executor and bind_cancellation_slot, whose
// headers every includer would parse.
#pragma once

#include <boost/asio/associator.hpp>

#include <utility>

namespace herd::detail {

template <typename Handler, typename Adapter>
struct adapted_handler {
  Handler handler;
  Adapter adapter;  // called with the handler (to be moved from) and the erased operation's arguments

  template <typename... Args>
  void operator()(Args&&... args) {
    adapter(std::move(handler), std::forward<Args>(args)...);
  }
};

template <typename Handler, typename Adapter>
adapted_handler<Handler, Adapter> adapt(Handler handler, Adapter adapter) {
  return {std::move(handler), std::move(adapter)};
}

}  // namespace herd::detail

template <template <typename, typename> class Associator, typename Handler, typename Adapter,
          typename DefaultCandidate>
struct boost::asio::associator<Associator, herd::detail::adapted_handler<Handler, Adapter>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      const herd::detail::adapted_handler<Handler, Adapter>& h, const DefaultCandidate& c = DefaultCandidate()) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};
