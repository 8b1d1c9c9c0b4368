// What travels to a pool worker for one task, or to a function child started by spawn or the
// forkserver: the address of a trampoline instantiated for the function's type and its
// arguments' types, the function pointer itself (nothing for an empty callable), and the encoded
// arguments (DESIGN.md §4, "Code that travels without registration"). The other process calls
// the trampoline, which decodes, calls and encodes the result. Included by herd/pool.hpp and
// herd/process.hpp.
#pragma once

#include <herd/codec.hpp>
#include <herd/detail/function_child.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace herd::detail {

/// A task as the worker runs it: `callable` is the function pointer (0 for an empty callable),
/// `args` the encoded arguments; the encoded result is appended to `out`; an exception escapes.
using task_entry = void (*)(std::uint64_t callable, std::string_view args, std::string& out);

/// A function, a function pointer, or an empty callable that a worker can make for itself.
template <typename F>
concept travelling_callable =
    (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) ||
    (std::is_class_v<F> && std::is_empty_v<F> && std::is_default_constructible_v<F>);

/// A function object whose whole state herd::codec encodes (a plain struct with `operator()` or
/// `run()`, like a Python Process subclass's attributes): it travels as its value, ahead of the
/// arguments. A lambda with captures is not one: C++20 cannot list a closure's captures.
template <typename F>
concept encodable_callable = std::is_class_v<F> && !travelling_callable<F> && encodable<F> &&
                             std::is_default_constructible_v<F>;

/// An argument's type as it travels: a C string becomes a std::string.
template <typename T>
using travel_t = std::conditional_t<std::is_same_v<std::decay_t<T>, const char*> || std::is_same_v<std::decay_t<T>, char*>,
                                    std::string, std::decay_t<T>>;

template <typename F>
std::uint64_t callable_word(const F& f) noexcept {
  if constexpr (std::is_pointer_v<F>)
    return reinterpret_cast<std::uintptr_t>(f);
  else
    return 0;
}

template <typename F>
F callable_from(std::uint64_t word) noexcept {
  if constexpr (std::is_pointer_v<F>)
    return reinterpret_cast<F>(static_cast<std::uintptr_t>(word));
  else
    return F{};
}

/// The result type of a task: what `f(args...)` returns, unwrapped from an awaitable.
template <typename F, typename... Args>
using task_result_t = typename result_of_start<F, Args...>::type;

/// A worker that runs several coroutine tasks at once (`concurrency_per_worker`): a trampoline
/// hands it the task's coroutine, which yields the encoded result, instead of running it to its
/// end. Set only in such a worker, only while a trampoline runs.
class coroutine_host {
 public:
  virtual void adopt(asio::awaitable<std::string> task) = 0;

 protected:
  ~coroutine_host() = default;
};
coroutine_host*& current_coroutine_host() noexcept;

// The coroutine a host adopts: it owns the function and its arguments (the task's message is
// gone by the time it runs), calls one item or a whole chunk, and yields the encoded results.
template <typename F, typename... Args>
asio::awaitable<std::string> adopted_task(F f, std::vector<std::tuple<Args...>> items) {
  std::string out;
  for (auto& args : items) {
    auto work = std::apply([&](auto&... a) { return call(f, a...); }, args);
    using result = typename awaitable_traits<decltype(work)>::type;
    if constexpr (std::is_void_v<result>) {
      co_await std::move(work);
    } else {
      const result value = co_await std::move(work);
      encoder(out).value(value);
    }
  }
  co_return out;
}

// Calls f on decoded arguments and appends the encoded result to `out`.
template <typename F, typename Tuple, std::size_t... I>
void call_and_encode(F& f, Tuple& args, std::string& out, std::index_sequence<I...>) {
  using raw = call_result_t<F, std::tuple_element_t<I, Tuple>...>;
  if constexpr (awaitable_traits<raw>::is_awaitable) {
    using result = typename awaitable_traits<raw>::type;
    if constexpr (std::is_void_v<result>) {
      run_awaitable(call(f, std::get<I>(args)...));
    } else {
      run_awaitable([](raw work, std::string& into) -> asio::awaitable<void> {
        const result value = co_await std::move(work);
        encoder(into).value(value);
      }(call(f, std::get<I>(args)...), out));
    }
  } else if constexpr (std::is_void_v<raw>) {
    call(f, std::get<I>(args)...);
  } else {
    encoder(out).value(static_cast<const std::decay_t<raw>&>(call(f, std::get<I>(args)...)));
  }
}

template <typename... Args>
std::tuple<Args...> decode_arguments(decoder& in) {
  // Braced initialization evaluates in order: the arguments decode front to back.
  return std::tuple<Args...>{in.value<Args>()...};
}

template <typename F, typename... Args>
constexpr bool is_coroutine_task = awaitable_traits<call_result_t<F, Args...>>::is_awaitable;

/// One call: f(args...).
template <typename F, typename... Args>
void invoke_task(std::uint64_t callable, std::string_view encoded, std::string& out) {
  decoder in(encoded);
  std::tuple<Args...> args = decode_arguments<Args...>(in);
  F f = callable_from<F>(callable);
  if constexpr (is_coroutine_task<F, Args...>) {
    if (coroutine_host* host = current_coroutine_host()) {
      std::vector<std::tuple<Args...>> items;
      items.push_back(std::move(args));
      host->adopt(adopted_task(f, std::move(items)));
      return;
    }
  }
  call_and_encode(f, args, out, std::index_sequence_for<Args...>{});
}

/// A chunk of a map: a count, then each item's arguments (a tuple for starmap); the results
/// follow one another in `out`, in order. The first exception ends the chunk.
template <typename F, typename... Args>
void invoke_chunk(std::uint64_t callable, std::string_view encoded, std::string& out) {
  decoder in(encoded);
  const std::size_t count = in.size();
  F f = callable_from<F>(callable);
  if constexpr (is_coroutine_task<F, Args...>) {
    if (coroutine_host* host = current_coroutine_host()) {
      std::vector<std::tuple<Args...>> items;
      items.reserve(count);
      for (std::size_t i = 0; i < count; ++i) items.push_back(decode_arguments<Args...>(in));
      host->adopt(adopted_task(f, std::move(items)));
      return;
    }
  }
  for (std::size_t i = 0; i < count; ++i) {
    std::tuple<Args...> args = decode_arguments<Args...>(in);
    call_and_encode(f, args, out, std::index_sequence_for<Args...>{});
  }
}

/// One call of a function object that travels as its encoded value, ahead of the arguments.
template <typename F, typename... Args>
void invoke_object_task(std::uint64_t, std::string_view encoded, std::string& out) {
  decoder in(encoded);
  F f = in.value<F>();
  std::tuple<Args...> args = decode_arguments<Args...>(in);
  call_and_encode(f, args, out, std::index_sequence_for<Args...>{});
}

template <typename F, typename... Args>
task_entry task_entry_for() noexcept {
  return &invoke_task<F, Args...>;
}

template <typename... Args>
void encode_arguments(std::string& out, const Args&... args) {
  encoder e(out);
  (e.value(static_cast<const travel_t<Args>&>(travel_t<Args>(args))), ...);
}

/// A call that runs in another process started from this binary: its trampoline, the callable's
/// word (a function pointer's address, or 0) and the encoded arguments (an encodable function
/// object's value first).
struct travelling_call {
  task_entry entry = nullptr;
  std::uint64_t callable = 0;
  std::string args;
};

// Why `f(args...)` cannot travel, or nullptr if it can (with the same result as in place).
template <typename F, typename... Args>
constexpr const char* why_not_travelling() {
  if constexpr (!travelling_callable<F> && !encodable_callable<F>)
    return "it holds state herd::codec cannot encode (a lambda's captures cannot be listed in C++20): pass what it "
           "captures as arguments, or make it a plain struct of encodable fields with operator() or run()";
  else if constexpr (!(encodable<travel_t<Args>> && ...))
    return "an argument cannot be encoded (see herd/codec.hpp)";
  else if constexpr (!startable<F, travel_t<Args>...>)
    return "it cannot be called with its arguments as they travel (a C string arrives as std::string)";
  else if constexpr (!(std::is_void_v<typename result_of_start<F, travel_t<Args>...>::type> ||
                       encodable<typename result_of_start<F, travel_t<Args>...>::type>))
    return "its result cannot be encoded (see herd/codec.hpp)";
  else if constexpr (!std::is_same_v<typename result_of_start<F, travel_t<Args>...>::type,
                                     typename result_of_start<F, std::decay_t<Args>...>::type>)
    return "its result type differs when called with its arguments as they travel";
  else
    return nullptr;
}

/// `f(args...)` as it travels; only for a call why_not_travelling() accepts.
template <typename F, typename... Args>
travelling_call travelling_call_of(const F& f, const Args&... args) {
  travelling_call call;
  if constexpr (travelling_callable<F>) {
    call.entry = &invoke_task<F, travel_t<Args>...>;
    call.callable = callable_word(f);
  } else {
    call.entry = &invoke_object_task<F, travel_t<Args>...>;
    encoder(call.args).value(f);
  }
  encode_arguments(call.args, args...);
  return call;
}

struct function_process;

/// The start method of a herd::start with these options.
herd::start_method start_method_of(const process_options& options) noexcept;

/// Starts a function child by spawn or the forkserver: `call` travels to it encoded, its result
/// comes back as a forked child's does.
std::shared_ptr<function_process> start_travelling(const asio::any_io_executor& ex, const process_options& options,
                                                   herd::start_method method, const std::type_info& function_type,
                                                   const void* function_address, const travelling_call& call);

/// Throws invalid_argument: the function cannot be started by `method`, and `why`.
[[noreturn]] void throw_cannot_travel(herd::start_method method, const std::type_info& function_type,
                                      const void* function_address, const char* why);

}  // namespace herd::detail
