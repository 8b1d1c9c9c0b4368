// What travels to a pool worker for one task: the address of a trampoline instantiated for the
// function's type and its arguments' types, the function pointer itself (nothing for an empty
// callable), and the encoded arguments (DESIGN.md §4, "Code that travels without registration").
// The worker calls the trampoline, which decodes, calls and encodes the result. Included by
// herd/pool.hpp.
#pragma once

#include <herd/codec.hpp>
#include <herd/detail/function_child.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace herd::detail {

/// A task as the worker runs it: `callable` is the function pointer (0 for an empty callable),
/// `args` the encoded arguments; the encoded result is appended to `out`; an exception escapes.
using task_entry = void (*)(std::uint64_t callable, std::string_view args, std::string& out);

/// A function, a function pointer, or an empty callable that a worker can make for itself.
template <typename F>
concept travelling_callable =
    (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) ||
    (std::is_class_v<F> && std::is_empty_v<F> && std::is_default_constructible_v<F>);

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

/// One call: f(args...).
template <typename F, typename... Args>
void invoke_task(std::uint64_t callable, std::string_view encoded, std::string& out) {
  decoder in(encoded);
  std::tuple<Args...> args = decode_arguments<Args...>(in);
  F f = callable_from<F>(callable);
  call_and_encode(f, args, out, std::index_sequence_for<Args...>{});
}

/// A chunk of a map: a count, then each item's arguments (a tuple for starmap); the results
/// follow one another in `out`, in order. The first exception ends the chunk.
template <typename F, typename... Args>
void invoke_chunk(std::uint64_t callable, std::string_view encoded, std::string& out) {
  decoder in(encoded);
  const std::size_t count = in.size();
  F f = callable_from<F>(callable);
  for (std::size_t i = 0; i < count; ++i) {
    std::tuple<Args...> args = decode_arguments<Args...>(in);
    call_and_encode(f, args, out, std::index_sequence_for<Args...>{});
  }
}

template <typename F, typename... Args>
task_entry task_entry_for() noexcept {
  return &invoke_task<F, Args...>;
}

}  // namespace herd::detail
