// What herd::start instantiates, apart from the handle: how a function is called in the child
// (f(args...) or f.run(args...), a coroutine on a fresh io_context), how its result is sent, and
// the erased operations of src/ the handle's templates call. Included by herd/process.hpp.
#pragma once

#include <herd/codec.hpp>
#include <herd/config.hpp>
#include <herd/error.hpp>
#include <herd/exit_status.hpp>
#include <herd/process_options.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace herd {
namespace detail {

struct function_process;
struct core_access;

/// Where the child writes its outcome (the status channel to the parent).
class result_sink {
 public:
  explicit result_sink(int fd) noexcept : fd_(fd) {}
  /// The function returned: `bytes` is its encoded result (empty for void).
  void send_value(std::string_view bytes);

 private:
  int fd_;
};

/// A non-owning reference to the code a child runs; it lives on the parent's stack frame of
/// `start`, which the forked child has a copy of.
class child_body {
 public:
  template <typename Body>
  explicit child_body(Body& body) noexcept
      : object_(&body), call_([](void* object, result_sink& sink) { (*static_cast<Body*>(object))(sink); }) {}
  void operator()(result_sink& sink) const { call_(object_, sink); }

 private:
  void* object_;
  void (*call_)(void*, result_sink&);
};

/// Forks. In the parent, returns the new child's state; in the child, runs `body`, reports its
/// outcome (value or exception), flushes stdio and leaves with `_exit`: it never returns there.
/// `function_type` and `function_address` name what the child runs, for messages (described
/// only when a message needs it: demangling costs more than a fork's bookkeeping).
std::shared_ptr<function_process> fork_process(const asio::any_io_executor& ex, const process_options& options,
                                               const std::type_info& function_type, const void* function_address,
                                               child_body body);

/// Runs a coroutine to completion on a fresh io_context of the child's own.
void run_awaitable(asio::awaitable<void> body);

/// A readable name for what a child runs (demangled; a function pointer's symbol if known).
std::string describe_function(const std::type_info& type, const void* function_address);

template <typename T>
struct awaitable_traits {
  static constexpr bool is_awaitable = false;
};
template <typename T, typename Executor>
struct awaitable_traits<asio::awaitable<T, Executor>> {
  static constexpr bool is_awaitable = true;
  using type = T;
};

template <typename Result>
struct result_signature {
  using type = void(std::exception_ptr, Result);
};
template <>
struct result_signature<void> {
  using type = void(std::exception_ptr);
};

// f(args...) when that is valid, else f.run(args...) (Python's Process subclass overriding run()).
template <typename F, typename... Args>
decltype(auto) call(F& f, Args&... args) {
  if constexpr (std::is_invocable_v<F&, Args&...>)
    return std::invoke(f, args...);
  else
    return f.run(args...);
}

template <typename F, typename... Args>
concept startable = std::is_invocable_v<F&, Args&...> || requires(F& f, Args&... args) { f.run(args...); };

template <typename F, typename... Args>
using call_result_t = decltype(call(std::declval<F&>(), std::declval<Args&>()...));

template <typename F, typename... Args>
struct result_of_start {
  using raw = call_result_t<F, Args...>;
  using type = std::decay_t<typename std::conditional_t<awaitable_traits<raw>::is_awaitable, awaitable_traits<raw>,
                                                        std::type_identity<raw>>::type>;
};
template <typename F>
const void* function_address(const F& f) noexcept {
  if constexpr (std::is_function_v<F>)
    return reinterpret_cast<const void*>(&f);
  else if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>)
    return reinterpret_cast<const void*>(f);
  else
    return nullptr;
}

// The child's side of start(): call, then send the encoded result.
template <typename Result, typename F, typename... Args>
void run_in_child(result_sink& sink, F& f, Args&... args) {
  using raw = call_result_t<F, Args...>;
  if constexpr (awaitable_traits<raw>::is_awaitable) {
    if constexpr (std::is_void_v<Result>) {
      run_awaitable(call(f, args...));
      sink.send_value({});
    } else {
      std::optional<Result> out;
      run_awaitable([](raw work, std::optional<Result>& into) -> asio::awaitable<void> {
        into.emplace(co_await std::move(work));
      }(call(f, args...), out));
      sink.send_value(herd::encode(*out));
    }
  } else if constexpr (std::is_void_v<Result>) {
    call(f, args...);
    sink.send_value({});
  } else {
    sink.send_value(herd::encode(static_cast<const Result&>(call(f, args...))));
  }
}

// `ex`: the handle's executor, which an empty handle (state null) completes through.
void async_join_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                       asio::any_completion_handler<void(error_code, exit_status)> handler);
void async_stop_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                       asio::any_completion_handler<void(error_code, exit_status)> handler);
void async_result_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                          asio::any_completion_handler<void(std::exception_ptr, std::string)> handler);
/// What every call on an empty (moved-from or detached) handle reports: errc::not_running.
boost::system::system_error empty_handle_error();
/// For a reaped child: its encoded result in `bytes`, or what went wrong.
std::exception_ptr outcome_of(const function_process& state, std::string& bytes);

}  // namespace detail

}  // namespace herd
