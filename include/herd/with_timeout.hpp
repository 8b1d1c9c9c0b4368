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
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace herd {
namespace detail {

struct timeout_state {
  explicit timeout_state(const asio::any_io_executor& ex) : deadline(ex) {}
  asio::cancellation_signal inner;
  timer deadline;
  bool expired = false;
};

// Cancellation of the whole operation reaches the inner one, and so does the deadline.
template <typename Handler>
void arm_timeout(const std::shared_ptr<timeout_state>& state, Handler& handler,
                 std::chrono::steady_clock::duration timeout) {
  auto outer = asio::get_associated_cancellation_slot(handler);
  if (outer.is_connected()) outer.assign([state](asio::cancellation_type type) { state->inner.emit(type); });
  state->deadline.async_wait(timeout, [state](error_code ec) {
    if (ec) return;
    state->expired = true;
    state->inner.emit(asio::cancellation_type::all);
  });
}

// The inner operation is over: neither the deadline nor the outer cancellation may reach it.
template <typename Handler>
void disarm_timeout(timeout_state& state, Handler& handler) {
  state.deadline.cancel();
  auto outer = asio::get_associated_cancellation_slot(handler);
  if (outer.is_connected()) outer.clear();
}

/// What an awaitable cancelled by its deadline throws: system_error(errc::timed_out), its
/// what() naming the limit and what the operation reported.
[[noreturn]] void throw_timed_out(std::chrono::steady_clock::duration timeout, const std::exception& cause);

template <typename T>
inline constexpr bool is_awaitable_v = false;
template <typename T, typename Executor>
inline constexpr bool is_awaitable_v<asio::awaitable<T, Executor>> = true;

template <typename T>
struct awaited {
  using type = std::optional<T>;  // co_spawn needs a default-constructible result
  using signature = void(std::exception_ptr, type);
};
template <>
struct awaited<void> {
  using type = void;
  using signature = void(std::exception_ptr);
};

template <typename T, typename Executor>
asio::awaitable<typename awaited<T>::type, Executor> await_as_optional(asio::awaitable<T, Executor> op) {
  if constexpr (std::is_void_v<T>)
    co_await std::move(op);
  else
    co_return std::optional<T>(co_await std::move(op));
}

// Runs `body` as a coroutine of its own, which the deadline or the outer cancellation cancels.
struct initiate_awaitable_with_timeout {
  template <typename Handler, typename Body>
  void operator()(Handler handler, std::shared_ptr<timeout_state> state, Body body,
                  std::chrono::steady_clock::duration timeout) const {
    arm_timeout(state, handler, timeout);
    auto ex = asio::get_associated_executor(handler);
    auto& slot_owner = *state;
    asio::co_spawn(ex, std::move(body),
                   asio::bind_cancellation_slot(slot_owner.inner.slot(), [handler = std::move(handler), state = std::move(
                                                                              state)](std::exception_ptr e,
                                                                                      auto&&... value) mutable {
                     disarm_timeout(*state, handler);
                     std::move(handler)(std::move(e), std::forward<decltype(value)>(value)...);
                   }));
  }
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
    disarm_timeout(*state_, handler_);
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
    arm_timeout(state, handler, timeout);
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
  requires(!detail::is_awaitable_v<std::decay_t<Op>>)
auto with_timeout(Op&& op, std::chrono::steady_clock::duration timeout, Token&& token = {}) {
  using signature = detail::deferred_signature_t<Op>;
  return asio::async_initiate<Token, signature>(detail::initiate_with_timeout<signature>{}, token,
                                                std::forward<Op>(op), timeout);
}

/// Awaits `op` (a coroutine, such as `pool.async_apply(f, x)` or `stream.async_next()`),
/// cancelling it (all cancellation types) if it has not finished after `timeout`. If it then
/// throws `operation_aborted`, that becomes `system_error(errc::timed_out)`, its what() naming the
/// limit and what the operation said; a value or another exception passes through unchanged.
///
/// @par Cancellation
///   cancelling the await cancels `op` with the same type.
/// @par Executor
///   `op` runs as a coroutine of its own on the awaiting coroutine's executor.
/// @par Example
/// @code
/// int square = co_await herd::with_timeout(pool.async_apply(slow_square, 12), 1s);
/// @endcode
template <typename T, typename Executor>
asio::awaitable<T, Executor> with_timeout(asio::awaitable<T, Executor> op, std::chrono::steady_clock::duration timeout) {
  const auto ex = co_await asio::this_coro::executor;
  auto state = std::make_shared<detail::timeout_state>(asio::any_io_executor(ex));
  using result = typename detail::awaited<T>::type;
  using signature = typename detail::awaited<T>::signature;
  asio::awaitable<result, Executor> body = detail::await_as_optional(std::move(op));
  asio::awaitable<result, Executor> done = asio::async_initiate<const asio::use_awaitable_t<Executor>&, signature>(
      detail::initiate_awaitable_with_timeout{}, asio::use_awaitable_t<Executor>{}, state, std::move(body), timeout);
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(done);
    } else {
      result value = co_await std::move(done);
      co_return std::move(*value);
    }
  } catch (const boost::system::system_error& error) {
    if (state->expired && error.code() == asio::error::operation_aborted) detail::throw_timed_out(timeout, error);
    throw;
  }
}

}  // namespace herd
