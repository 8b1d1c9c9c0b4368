/// @file herd/with_timeout.hpp
/// `herd::with_timeout(op, duration)`: any deferred operation, cancelled when time runs out.
#pragma once

#include <herd/config.hpp>
#include <herd/detail/chrono.hpp>
#include <herd/detail/signature.hpp>
#include <herd/detail/timer.hpp>
#include <herd/error.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/system_executor.hpp>

#include <memory>
#include <utility>

namespace herd {
namespace detail {

struct timeout_state {
  explicit timeout_state(const asio::any_io_executor& ex) : deadline(ex) {}
  asio::cancellation_signal inner;
  timer deadline;
  bool expired = false;
};

template <typename Handler, typename... Args>
class timeout_completion {
 public:
  timeout_completion(Handler handler, std::shared_ptr<timeout_state> state)
      : handler_(std::move(handler)), state_(std::move(state)) {}

  using executor_type = asio::associated_executor_t<Handler>;
  executor_type get_executor() const noexcept { return asio::get_associated_executor(handler_); }
  using cancellation_slot_type = asio::cancellation_slot;
  cancellation_slot_type get_cancellation_slot() const noexcept { return state_->inner.slot(); }

  void operator()(error_code ec, Args... args) {
    state_->deadline.cancel();
    auto outer = asio::get_associated_cancellation_slot(handler_);
    if (outer.is_connected()) outer.clear();
    if (state_->expired && ec == asio::error::operation_aborted) ec = errc::timed_out;
    std::move(handler_)(ec, std::move(args)...);
  }

 private:
  Handler handler_;
  std::shared_ptr<timeout_state> state_;
};

template <typename Signature>
struct initiate_with_timeout;

template <typename... Args>
struct initiate_with_timeout<void(error_code, Args...)> {
  template <typename Handler, typename Op>
  void operator()(Handler&& handler, Op&& op, std::chrono::steady_clock::duration timeout) const {
    using handler_type = std::decay_t<Handler>;
    static_assert(!std::is_same_v<asio::associated_executor_t<handler_type>, asio::system_executor>,
                  "herd::with_timeout: the completion handler needs an associated executor for its timer "
                  "(a coroutine has one; bind one to a callback with asio::bind_executor)");
    auto ex = asio::get_associated_executor(handler);
    auto state = std::make_shared<timeout_state>(asio::any_io_executor(ex));
    // Cancellation of the whole operation reaches the inner one.
    auto outer = asio::get_associated_cancellation_slot(handler);
    if (outer.is_connected())
      outer.assign([state](asio::cancellation_type type) { state->inner.emit(type); });
    state->deadline.async_wait(timeout, [state](error_code ec) {
      if (ec) return;
      state->expired = true;
      state->inner.emit(asio::cancellation_type::all);
    });
    timeout_completion<handler_type, Args...> completion(std::forward<Handler>(handler), std::move(state));
    if constexpr (is_described_v<Op>)
      std::forward<Op>(op)(undescribed<decltype(completion)>{std::move(completion)});
    else
      std::forward<Op>(op)(std::move(completion));
  }
};

}  // namespace detail

/// Runs the deferred operation `op`, cancelling it (all cancellation types) if it has not
/// completed after `timeout`. If it then completes with `operation_aborted`, the error becomes
/// `errc::timed_out`; every other result passes through unchanged, with its values.
///
/// @param op a deferred operation whose completion signature starts with `error_code`,
///        e.g. `q.async_get()` or `timer.async_wait(asio::deferred)`.
/// @param timeout how long `op` may take.
/// @param token the completion token (default: `asio::deferred`, or for an operation whose
///        failures are described, such as `herd::async_run`, the same described default).
///
/// @par Completion signature
///   that of `op`.
/// @par Cancellation
///   cancelling the returned operation cancels `op` with the same type; the result is then
///   `op`'s own (operation_aborted for herd's operations).
/// @par Executor
///   the deadline runs on the completion handler's associated executor (a coroutine's own; a
///   callback needs `asio::bind_executor`, else this does not compile).
/// @par Example
/// @code
/// auto [ec, result] = co_await herd::with_timeout(herd::async_run(ex, cmd), 2s, asio::as_tuple(asio::deferred));
/// @endcode
template <typename Op, typename Token = detail::default_token_for<Op>>
auto with_timeout(Op&& op, std::chrono::steady_clock::duration timeout, Token&& token = {}) {
  using signature = detail::deferred_signature_t<Op>;
  return asio::async_initiate<Token, signature>(detail::initiate_with_timeout<signature>{}, token,
                                                std::forward<Op>(op), timeout);
}

}  // namespace herd
