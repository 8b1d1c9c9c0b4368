// The default completion token of operations whose result describes what failed (async_run's
// run_result, async_run_pipeline's run_pipeline_result): a plain `co_await` throws a system_error
// whose what() carries that description, not only the error code's message
// (docs/design/decisions.md, "Errors that keep their context").
#pragma once

#include <herd/config.hpp>
#include <herd/detail/adapted_handler.hpp>

#include <boost/system/system_error.hpp>
#include <boost/version.hpp>

#include <exception>
#include <type_traits>
#include <utility>

namespace herd::detail {

/// `co_await`ed, an operation with this token completes as with `asio::deferred`, except that a
/// failure of a `void(error_code, R)` operation whose `R` has a `description` becomes a
/// `system_error(ec, result.description)`: the signature seen is `void(std::exception_ptr, R)`.
struct described_deferred_t {};

template <typename R>
concept has_description = requires(const R& r) { r.description; };

// Turns `void(error_code, R)` into `void(std::exception_ptr, R)`, the description in what().
struct describe_failure {
  template <typename Handler, has_description R>
  void operator()(Handler&& handler, error_code ec, R result) {
    std::exception_ptr error;
    if (ec) error = std::make_exception_ptr(boost::system::system_error(ec, result.description));
    std::move(handler)(error, std::move(result));
  }
};

/// Marks a handler that wants the operation's own `void(error_code, R)` completion (with_timeout
/// unwraps a described operation this way, so its token sees the error code).
template <typename Handler>
struct undescribed {
  Handler handler;

  // Only for the completion_token_for check of the deferred operation; never called.
  template <typename R>
  void operator()(std::exception_ptr, R) {}
};

template <typename T>
struct is_undescribed : std::false_type {};
template <typename H>
struct is_undescribed<undescribed<H>> : std::true_type {};

template <typename Initiation>
struct describing_initiation {
  Initiation inner;

  template <typename Handler, typename... Args>
  void operator()(Handler&& handler, Args&&... args) && {
    if constexpr (is_undescribed<std::decay_t<Handler>>::value)
      std::move(inner)(std::move(handler.handler), std::forward<Args>(args)...);
    else
      std::move(inner)(adapt(std::forward<Handler>(handler), describe_failure{}), std::forward<Args>(args)...);
  }
};

}  // namespace herd::detail

namespace boost::asio {

template <typename R>
struct async_result<herd::detail::described_deferred_t, void(herd::error_code, R)> {
  template <typename Initiation, typename RawToken, typename... Args>
  static auto initiate(Initiation&& initiation, RawToken&&, Args&&... args) {
    using described = herd::detail::describing_initiation<std::decay_t<Initiation>>;
    return async_initiate<const deferred_t&, void(std::exception_ptr, R)>(
        described{std::forward<Initiation>(initiation)}, deferred, std::forward<Args>(args)...);
  }
};

#if BOOST_VERSION < 108200
namespace detail {
// Declared as in <boost/asio/awaitable.hpp>, which this header need not parse: the
// specialization below is only instantiated by a co_await, whose code includes it.
template <typename>
class awaitable_thread;
template <typename, typename>
class awaitable_async_op_handler;

// Asio 1.26 (Boost 1.81) cannot co_await a deferred `void(std::exception_ptr, T)` operation: its
// resume() tests `*result` instead of `*result.ex_` (chriskohlhoff/asio#1190, fixed in 1.82).
// This specialization is that class with the fix; the broken one never compiled, so no program
// can have used it.
template <typename T, typename Executor>
class awaitable_async_op_handler<void(std::exception_ptr, T), Executor> : public awaitable_thread<Executor> {
 public:
  struct result_type {
    std::exception_ptr* ex_;
    T* value_;
  };

  awaitable_async_op_handler(awaitable_thread<Executor>* h, result_type& result)
      : awaitable_thread<Executor>(std::move(*h)), result_(result) {}

  void operator()(std::exception_ptr ex, T value) {
    result_.ex_ = &ex;
    result_.value_ = &value;
    this->entry_point()->top_of_stack_->attach_thread(this);
    this->entry_point()->top_of_stack_->clear_cancellation_slot();
    this->pump();
  }

  static T resume(result_type& result) {
    if (*result.ex_) std::rethrow_exception(std::exchange(*result.ex_, nullptr));
    return std::move(*result.value_);
  }

 private:
  result_type& result_;
};
}  // namespace detail
#endif

}  // namespace boost::asio
