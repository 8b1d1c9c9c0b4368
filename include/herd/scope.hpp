/// @file herd/scope.hpp
/// `herd::scope`: a nursery. Every child started in a scope is stopped and reaped when the scope
/// ends, however it ends, so no code path leaks a process.
#pragma once

#include <herd/child.hpp>
#include <herd/config.hpp>
#include <herd/process.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace herd {
namespace detail {
struct process_core;
}

/// Owns the children started through it: function children (`start`) and programs (`spawn`).
///
/// `co_await s.async_close()` stops every child still running with its stop policy and waits
/// until all are reaped. `herd::scoped(ex, body)` does that for you when `body` returns, throws
/// or is cancelled. A scope destroyed without being closed stops what still runs in the
/// background (as the handles' destructors do), so nothing outlives it unnoticed.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe.
class scope {
 public:
  using executor_type = asio::any_io_executor;

  explicit scope(const executor_type& ex);
  scope(const scope&) = delete;
  scope& operator=(const scope&) = delete;
  ~scope();

  executor_type get_executor() const noexcept { return executor_; }

  /// herd::start() in this scope.
  template <typename F, typename... Args>
    requires detail::startable<std::decay_t<F>, std::decay_t<Args>...>
  process_for<F, Args...> start(const process_options& options, F&& f, Args&&... args) {
    auto p = herd::start(executor_, options, std::forward<F>(f), std::forward<Args>(args)...);
    adopt(p);
    return p;
  }

  /// herd::start() in this scope, with default options.
  template <typename F, typename... Args>
    requires detail::startable<std::decay_t<F>, std::decay_t<Args>...>
  process_for<F, Args...> start(F&& f, Args&&... args) {
    return start(process_options{}, std::forward<F>(f), std::forward<Args>(args)...);
  }

  /// A program (herd::child) in this scope.
  child spawn(const command& cmd);

  /// How many of its children still run.
  std::size_t running();

  /// Stops every child still running (stop policy) and completes once all are reaped. The scope
  /// stays usable afterwards.
  /// @par Completion signature `void(error_code)`.
  /// @par Cancellation not supported: the cleanup always runs to the end.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_close(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code)>([this](auto handler) { close_impl(std::move(handler)); },
                                                         token);
  }

 private:
  void adopt(const process_base& p);
  void close_impl(asio::any_completion_handler<void(error_code)> handler);

  executor_type executor_;
  std::vector<std::shared_ptr<detail::process_core>> members_;
};

/// Runs `body(scope&)` — a coroutine returning `asio::awaitable<R>` — with a fresh scope, and
/// closes the scope when the body returns, throws or is cancelled: every child it started is
/// stopped and reaped before `scoped` returns the body's result or rethrows its exception.
template <typename Body>
auto scoped(const asio::any_io_executor& ex, Body body) -> std::invoke_result_t<Body&, scope&> {
  scope children(ex);
  std::exception_ptr failure;
  using result_type = typename detail::awaitable_traits<std::invoke_result_t<Body&, scope&>>::type;
  std::optional<std::conditional_t<std::is_void_v<result_type>, bool, result_type>> result;
  try {
    if constexpr (std::is_void_v<result_type>) {
      co_await body(children);
      result.emplace(true);
    } else {
      result.emplace(co_await body(children));
    }
  } catch (...) {
    failure = std::current_exception();
  }
  // Cleanup runs even when the body was cancelled: nothing may cancel it.
  co_await asio::this_coro::reset_cancellation_state([](asio::cancellation_type) {
    return asio::cancellation_type::none;
  });
  co_await asio::this_coro::throw_if_cancelled(false);
  co_await children.async_close(asio::deferred);
  if (failure) std::rethrow_exception(failure);
  if constexpr (!std::is_void_v<result_type>) co_return std::move(*result);
}

}  // namespace herd
