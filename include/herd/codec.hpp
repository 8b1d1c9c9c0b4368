/// @file herd/codec.hpp
/// Values to bytes and back, for everything that crosses a process boundary (results of
/// function children, queue and pipe messages).
///
/// How a type travels, first match wins:
///  1. a specialization of `herd::codec<T>` you write (the one customization point);
///     `herd::raw_codec<T>` is a ready-made one that copies bytes (the opt-in below);
///  2. its bytes, as they are: arithmetic types, enums, `std::chrono` durations and time points,
///     and trivially copyable aggregates whose every field is itself sent as its bytes;
///  3. `std::string`, and containers, `array`, `optional`, `pair`, `tuple`, `variant` of
///     encodable types (a container is recognised by its members, as the standard's and Boost's
///     sequences, maps and sets have them, so herd includes none of their headers);
///  4. aggregates (plain structs) field by field, through Boost.PFR;
///  5. types cereal can serialize (a `serialize` or `save`/`load` member or function), once
///     `<herd/cereal.hpp>` is included: cereal is opt-in, so that every other user's build does
///     not parse it.
///
/// Refused, at compile time, with a message naming the reason: what holds an address of this
/// process — raw, smart and member pointers, references, views (`std::string_view`,
/// `std::span`, `std::initializer_list`), `std::function` — and anything holding one, at any
/// depth: a struct field (C arrays are checked by their element type), a container element.
/// A trivially copyable class that is not an aggregate (private members, a union) is refused
/// too, because herd cannot see whether it holds a pointer: if its bytes are its whole value,
/// opt in with `template <> struct herd::codec<T> : herd::raw_codec<T> {};`. So are aggregates
/// the receiver cannot rebuild (no default constructor, const or reference members) and, rather
/// than checked, aggregates of more than 1024 fields and C-array elements (docs/reference/codec.md).
/// `herd::encodable<T>` says, without failing, whether `T` would be accepted.
///
/// The bytes are for processes running the same binary (fork children, pool workers): sizes
/// and layouts are the machine's own, not a portable format.
#pragma once

#include <herd/detail/chrono.hpp>
#include <herd/error.hpp>

#include <boost/pfr/core.hpp>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace herd {

namespace detail {
/// Decoded values this large have their memory made present before they are filled (prefault).
inline constexpr std::size_t prefault_from = std::size_t(4) << 20;
/// Makes the whole pages of [data, data + size) present and writable in one system call
/// (MADV_POPULATE_WRITE; nothing on kernels before 5.14). Copying into fresh memory otherwise
/// takes a page fault every 4 KiB: measured on a VM, 1.5 GiB copied in 0.5 s instead of 1 s.
void prefault(void* data, std::size_t size) noexcept;

class outgoing_message;
}  // namespace detail

/// Appends encoded values to a string.
class encoder {
 public:
  explicit encoder(std::string& out) noexcept : out_(out) {}
  void bytes(const void* data, std::size_t size) {
    if (overflow_ && size > limit_ - out_.size()) [[unlikely]] {
      limit_ = overflow_(context_, data, size);
      return;
    }
    out_.append(static_cast<const char*>(data), size);
  }
  void size(std::size_t n) {
    const std::uint64_t v = n;
    bytes(&v, sizeof v);
  }
  template <typename T>
  void value(const T& v);

 private:
  friend class detail::outgoing_message;
  // herd's channels: `out` holds at most `limit` bytes; `overflow` takes the bytes that would
  // pass it (a message larger than that is written into a memfd as it is encoded) and returns
  // the limit from then on.
  using overflow_function = std::size_t (*)(void* context, const void* data, std::size_t size) noexcept;
  encoder(std::string& out, std::size_t limit, overflow_function overflow, void* context) noexcept
      : out_(out), overflow_(overflow), context_(context), limit_(limit) {}

  std::string& out_;
  overflow_function overflow_ = nullptr;
  void* context_ = nullptr;
  std::size_t limit_ = 0;
};

/// Reads encoded values; a truncated or malformed input throws `boost::system::system_error`
/// with `errc::bad_message`.
class decoder {
 public:
  explicit decoder(std::string_view in) noexcept : in_(in) {}
  std::string_view take(std::size_t size) {
    if (size > in_.size()) fail("the message ends early");
    std::string_view part = in_.substr(0, size);
    in_.remove_prefix(size);
    return part;
  }
  void bytes(void* data, std::size_t size) {
    const std::string_view part = take(size);
    if (size != 0) std::memcpy(data, part.data(), size);  // an empty vector's data() may be null
  }
  std::size_t size() {
    std::uint64_t v;
    bytes(&v, sizeof v);
    if (v > (std::uint64_t(1) << 48)) fail("a length is impossible");
    return static_cast<std::size_t>(v);
  }
  std::size_t remaining() const noexcept { return in_.size(); }
  template <typename T>
  T value();
  [[noreturn]] static void fail(const char* what);

 private:
  std::string_view in_;
};

/// The customization point: specialize `codec<T>` with `static void encode(encoder&, const T&)`
/// and `static T decode(decoder&)`. The primary template is herd's own choice (see the file comment).
template <typename T, typename Enable = void>
struct codec;

namespace detail {
struct raw_codec_tag {};
}  // namespace detail

/// A codec that sends a trivially copyable `T` as its bytes: the explicit opt-in for a class herd
/// cannot look inside (private members, a union), for which you vouch that its bytes are its
/// whole value, with no pointer, handle or view into this process's memory:
///
///     template <> struct herd::codec<my_id> : herd::raw_codec<my_id> {};
///
/// Structs that hold such a type stay a single copy of bytes too.
template <typename T>
struct raw_codec : detail::raw_codec_tag {
  static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>,
                "herd::raw_codec<T>: T must be trivially copyable and default-constructible");
  static void encode(encoder& e, const T& v) { e.bytes(&v, sizeof v); }
  static T decode(decoder& d) {
    T v;
    d.bytes(&v, sizeof v);
    return v;
  }
};

namespace detail {

template <typename T, template <typename...> class Template>
inline constexpr bool is_instance = false;
template <template <typename...> class Template, typename... A>
inline constexpr bool is_instance<Template<A...>, Template> = true;

template <typename T>
inline constexpr bool is_std_array = false;
template <typename T, std::size_t N>
inline constexpr bool is_std_array<std::array<T, N>> = true;

template <typename T>
inline constexpr bool is_span = false;
template <typename T, std::size_t N>
inline constexpr bool is_span<std::span<T, N>> = true;

// Containers by their members (vector, deque, list, Boost's; maps and sets, ordered or not,
// unique or multi), not by name: naming them would make every user parse all their headers.
template <typename T>
concept sized_iterable = requires(const T& c) {
  typename T::value_type;
  c.begin();
  c.end();
  c.size();
};
template <typename T>
concept sequence_container = sized_iterable<T> && !std::is_same_v<T, std::string> &&
                             requires(T& c) { c.push_back(std::declval<typename T::value_type>()); };
template <typename T>
concept map_container = sized_iterable<T> && requires(T& c) {
  typename T::key_type;
  typename T::mapped_type;
  c.insert(std::declval<typename T::value_type>());
};
template <typename T>
concept set_container = sized_iterable<T> && !map_container<T> && requires(T& c) {
  typename T::key_type;
  requires std::is_same_v<typename T::key_type, typename T::value_type>;
  c.insert(std::declval<typename T::value_type>());
};
template <typename T>
inline constexpr bool is_sequence = sequence_container<T>;
template <typename T>
inline constexpr bool is_map = map_container<T>;
template <typename T>
inline constexpr bool is_set = set_container<T>;
template <typename T>
inline constexpr bool is_associative = is_map<T> || is_set<T>;

// std::variant by its members too (index(), valueless_by_exception(), built from
// std::in_place_index), so this header need not include <variant>.
template <typename T>
struct alternatives_of {};
template <template <typename...> class Variant, typename... Alternatives>
struct alternatives_of<Variant<Alternatives...>> {
  using type = std::tuple<Alternatives...>;
};
template <typename T>
concept variant_like = requires(const T& v) {
  typename alternatives_of<T>::type;
  requires std::tuple_size_v<typename alternatives_of<T>::type> > 0;
  { v.index() } -> std::convertible_to<std::size_t>;
  { v.valueless_by_exception() } -> std::convertible_to<bool>;
  requires std::is_constructible_v<T, std::in_place_index_t<0>,
                                   std::tuple_element_t<0, typename alternatives_of<T>::type>>;
};
template <typename T>
inline constexpr bool is_variant = variant_like<T>;
template <typename T, std::size_t I>
using alternative_t = std::tuple_element_t<I, typename alternatives_of<T>::type>;

template <typename T>
inline constexpr bool has_own_codec = !requires { typename codec<T>::herd_default_rules; };

// What herd makes of a type. The first two are accepted; the others are refusals, in the order
// of precedence used to name the reason when a type holds several.
enum class verdict : unsigned char {
  raw,          // sent as its bytes
  encoded,      // sent by a rule that is not a plain copy (or by the user's codec)
  pointer,      // an address: raw, smart or member pointer, reference
  view,         // a view into this process's memory: string_view, span, initializer_list
  function,     // std::function: code and captures of this process
  opaque,       // a trivially copyable class or union herd cannot look inside
  too_many,     // an aggregate with more fields and C-array elements than herd checks
  unbuildable,  // an aggregate the receiver cannot rebuild (no default constructor, const or reference members)
  none,         // no rule covers it
};

constexpr bool accepted(verdict v) noexcept { return v == verdict::raw || v == verdict::encoded; }

// Accepted (as `encoded`, a composite is never raw) if all parts are, else the refusal of most precedence.
constexpr verdict all_of(std::initializer_list<verdict> parts) noexcept {
  verdict result = verdict::encoded;
  for (verdict v : parts)
    if (!accepted(v) && (accepted(result) || v < result)) result = v;
  return result;
}

// Containers nest; past this depth their elements are taken as accepted here, and checked again
// when each element's own codec is instantiated (this stops recursion through types such as
// `struct node { std::vector<node> children; }`).
inline constexpr std::size_t max_depth = 16;

// Aggregates with more fields plus C-array elements than this are refused rather than checked
// (each element is one more initializer to try, and g++'s cost grows faster than linearly).
inline constexpr std::size_t max_slots = 1024;

struct plan {
  verdict what;
  int rule;  // as numbered in the file comment; 0 when refused
};

template <typename T, std::size_t Depth>
constexpr plan plan_for() noexcept;

// Rule 5, for what no other rule takes: none here; <herd/cereal.hpp> specializes it for the
// types cereal serializes, with `encode` and `decode`.
template <typename T, typename Enable = void>
struct fallback_codec {
  static constexpr bool available = false;
};

template <typename T, std::size_t Depth = 0>
inline constexpr plan plan_of = plan_for<T, Depth>();

template <typename T, std::size_t Depth = 0>
inline constexpr verdict verdict_of = plan_of<T, Depth>.what;

// The fields of an aggregate are reached without naming them (Boost.PFR counts them the same
// way, but fails hard on C-array fields and base classes): `T{s, s, ...}` with a "slot" that
// converts to any type compiles for any count of slots up to the number of fields, and not one
// more. A C array field takes one slot per element (brace elision), so it is checked by its
// element type; a base class takes one slot, as a field would. `noexcept(T{s, ...})` then tells
// whether `Test` holds for every field's type, because the conversion to `U` is declared
// `noexcept(Test::template holds<U>)`. Nothing is evaluated. (A field whose type has a
// forwarding constructor, such as `std::optional<X>`, is seen as the `X` it forwards to.)
template <typename Test>
struct slot {
  template <typename U>
  operator U() const noexcept(Test::template holds<U>);
};

template <std::size_t, typename Test>
using slot_at = slot<Test>;

struct any_field {
  template <typename U>
  static constexpr bool holds = true;
};

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wmissing-braces"  // brace elision into C arrays is the point
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-braces"
#endif

template <typename T, std::size_t... I>
constexpr bool takes_slots(std::index_sequence<I...>) noexcept {
  return requires { T{slot_at<I, any_field>{}...}; };
}

template <typename T, std::size_t N>
inline constexpr bool takes = takes_slots<T>(std::make_index_sequence<N>());

// Largest count in [Low, High) that T takes, knowing it takes Low and not High.
template <typename T, std::size_t Low, std::size_t High>
constexpr std::size_t slot_count_between() noexcept {
  if constexpr (High - Low <= 1) {
    return Low;
  } else {
    constexpr std::size_t middle = Low + (High - Low) / 2;
    if constexpr (takes<T, middle>)
      return slot_count_between<T, middle, High>();
    else
      return slot_count_between<T, Low, middle>();
  }
}

// Doubling from N (T takes N / 2); max_slots + 1 means more than max_slots.
template <typename T, std::size_t N>
constexpr std::size_t slot_count_from() noexcept {
  if constexpr (N > max_slots) {
    if constexpr (takes<T, max_slots + 1>)
      return max_slots + 1;
    else
      return slot_count_between<T, N / 2, max_slots + 1>();
  } else if constexpr (takes<T, N>) {
    return slot_count_from<T, 2 * N>();
  } else {
    return slot_count_between<T, N / 2, N>();
  }
}

// T{} must compile (so every count up to the real one does too).
template <typename T>
inline constexpr std::size_t slot_count = takes<T, 1> ? slot_count_from<T, 2>() : 0;

template <typename T, typename Test, std::size_t... I>
constexpr bool every_slot(std::index_sequence<I...>) noexcept {
  return noexcept(T{slot_at<I, Test>{}...});
}

#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

template <typename T, typename Test>
inline constexpr bool every_field = every_slot<T, Test>(std::make_index_sequence<slot_count<T>>());

template <std::size_t Depth>
struct accepted_field {
  template <typename U>
  static constexpr bool holds = accepted(verdict_of<U, Depth>);
};

template <std::size_t Depth>
struct raw_field {
  template <typename U>
  static constexpr bool holds = verdict_of<U, Depth> == verdict::raw;
};

template <std::size_t Depth, verdict Refusal>
struct field_not {
  template <typename U>
  static constexpr bool holds = verdict_of<U, Depth> != Refusal;
};

// The refusal of most precedence among T's fields (T has a refused field).
template <typename T, std::size_t Depth, verdict Refusal = verdict::pointer>
constexpr verdict field_refusal() noexcept {
  if constexpr (Refusal == verdict::none || !every_field<T, field_not<Depth, Refusal>>)
    return Refusal;
  else
    return field_refusal<T, Depth, static_cast<verdict>(static_cast<unsigned char>(Refusal) + 1)>();
}

template <typename T, std::size_t Depth>
constexpr plan aggregate_plan() noexcept {
  if constexpr (!requires { T{}; }) {
    return {verdict::unbuildable, 0};  // and its fields cannot be counted
  } else if constexpr (slot_count<T> > max_slots) {
    return {verdict::too_many, 0};
  } else if constexpr (!every_field<T, accepted_field<Depth>>) {
    return {field_refusal<T, Depth>(), 0};
  } else if constexpr (!std::is_default_constructible_v<T> || !std::is_move_assignable_v<T>) {
    // Decoding builds a T{} and assigns its fields (or copies bytes into it): so no const or
    // reference members (a reference member also stops the count of slots early).
    return {verdict::unbuildable, 0};
  } else if constexpr (std::is_trivially_copyable_v<T> && every_field<T, raw_field<Depth>>) {
    return {verdict::raw, 2};
  } else {
    return {verdict::encoded, 4};
  }
}

template <std::size_t Depth, template <typename...> class Template, typename... Parts>
constexpr verdict parts_verdict(std::type_identity<Template<Parts...>>) noexcept {
  return all_of({verdict_of<Parts, Depth>...});
}

// The elements of a standard container or vocabulary type, one level deeper.
template <typename T, std::size_t Depth>
constexpr verdict elements_verdict() noexcept {
  if constexpr (Depth >= max_depth)
    return verdict::encoded;
  else if constexpr (is_sequence<T> || is_set<T> || is_instance<T, std::optional>)
    return all_of({verdict_of<typename T::value_type, Depth + 1>});
  else if constexpr (is_map<T>)
    return all_of({verdict_of<typename T::key_type, Depth + 1>, verdict_of<typename T::mapped_type, Depth + 1>});
  else if constexpr (is_instance<T, std::pair>)
    return all_of({verdict_of<std::remove_const_t<typename T::first_type>, Depth + 1>,
                   verdict_of<typename T::second_type, Depth + 1>});
  else  // tuple, variant
    return parts_verdict<Depth + 1>(std::type_identity<T>());
}

// A class that none of the standard types' rules took.
template <typename T, std::size_t Depth>
constexpr plan class_plan() noexcept {
  if constexpr (std::is_aggregate_v<T> && !std::is_union_v<T>) {
    constexpr plan fields = aggregate_plan<T, Depth>();
    if constexpr (!accepted(fields.what) && fallback_codec<T>::available)
      return {verdict::encoded, 5};  // its own serialize() may know what to do with the fields herd refuses
    else
      return fields;
  } else if constexpr (fallback_codec<T>::available) {
    return {verdict::encoded, 5};
  } else if constexpr (std::is_trivially_copyable_v<T>) {
    return {verdict::opaque, 0};  // private members herd cannot see, or a union
  } else {
    return {verdict::none, 0};
  }
}

template <typename T, std::size_t Depth>
constexpr plan plan_for() noexcept {
  if constexpr (std::is_reference_v<T>) {
    return {verdict::pointer, 0};
  } else if constexpr (std::is_const_v<T> || std::is_volatile_v<T> || std::is_void_v<T> || std::is_array_v<T> ||
                       std::is_function_v<T>) {
    return {verdict::none, 0};  // C arrays are checked inside structs, as their elements
  } else if constexpr (has_own_codec<T>) {
    return {std::is_base_of_v<raw_codec_tag, codec<T>> ? verdict::raw : verdict::encoded, 1};
  } else if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T>) {
    return {verdict::pointer, 0};
  } else if constexpr (!std::is_class_v<T> && !std::is_union_v<T>) {
    return {verdict::raw, 2};  // arithmetic types, enums, nullptr_t: their bytes
  } else if constexpr (is_instance<T, std::unique_ptr> || is_instance<T, std::shared_ptr> ||
                       is_instance<T, std::weak_ptr> || is_instance<T, std::reference_wrapper>) {
    return {verdict::pointer, 0};
  } else if constexpr (is_instance<T, std::basic_string_view> || is_span<T> || is_instance<T, std::initializer_list>) {
    return {verdict::view, 0};
  } else if constexpr (is_instance<T, std::function>) {
    return {verdict::function, 0};
  } else if constexpr (std::is_same_v<T, std::string>) {
    return {verdict::encoded, 3};
  } else if constexpr (is_std_array<T>) {
    constexpr verdict item = verdict_of<typename T::value_type, Depth>;
    return {item, item == verdict::raw ? 2 : accepted(item) ? 3 : 0};
  } else if constexpr (is_sequence<T> || is_associative<T> || is_instance<T, std::optional> ||
                       is_instance<T, std::pair> || is_instance<T, std::tuple> || is_variant<T>) {
    constexpr verdict items = elements_verdict<T, Depth>();
    return {items, accepted(items) ? 3 : 0};
  } else if constexpr (is_instance<T, std::chrono::duration>) {
    if constexpr (verdict_of<typename T::rep, Depth> == verdict::raw)
      return {verdict::raw, 2};
    else
      return class_plan<T, Depth>();
  } else if constexpr (is_instance<T, std::chrono::time_point>) {
    if constexpr (verdict_of<typename T::duration, Depth> == verdict::raw)
      return {verdict::raw, 2};
    else
      return class_plan<T, Depth>();
  } else {
    return class_plan<T, Depth>();
  }
}

// The compile-time error for a refused type, naming the reason.
template <typename T>
constexpr void require_encodable() noexcept {
  constexpr verdict v = verdict_of<T>;
  static_assert(v != verdict::pointer,
                "herd::codec cannot send this type between processes: it is or holds a pointer (a raw, smart "
                "or member pointer, or a reference; maybe in a field or an element). An address means nothing "
                "in another process: send the value it points to");
  static_assert(v != verdict::view,
                "herd::codec cannot send this type between processes: it is or holds a view (std::string_view, "
                "std::span, std::initializer_list; maybe in a field or an element), which points into this "
                "process's memory: send an owning std::string, std::vector or std::array");
  static_assert(v != verdict::function,
                "herd::codec cannot send this type between processes: it is or holds a std::function (maybe in "
                "a field or an element): code and captures cannot travel; send data that says what to do");
  static_assert(v != verdict::opaque,
                "herd::codec cannot send this type between processes: it is or holds a trivially copyable class "
                "that is not an aggregate (private members) or a union, so herd cannot see whether it holds a "
                "pointer. If its bytes are its whole value, opt in: template <> struct herd::codec<T> : "
                "herd::raw_codec<T> {}; or give it a cereal serialize() function and include <herd/cereal.hpp>");
  static_assert(v != verdict::too_many,
                "herd::codec cannot send this type between processes: it is or holds a struct with more than "
                "1024 fields and C-array elements, more than herd checks one by one: hold large buffers in a "
                "std::array (checked once) or a std::vector, or opt in: template <> struct herd::codec<T> : "
                "herd::raw_codec<T> {};");
  static_assert(v != verdict::unbuildable,
                "herd::codec cannot send this type between processes: it is or holds a struct the receiver "
                "cannot rebuild: it needs a default constructor and assignable fields (no const or reference "
                "members)");
  static_assert(v != verdict::none,
                "herd::codec cannot send this type between processes: make it trivially copyable, a plain "
                "aggregate struct of encodable fields, specialize herd::codec<T> (herd/codec.hpp), or give it "
                "a cereal serialize() function and include <herd/cereal.hpp>");
}

}  // namespace detail

template <typename T, typename Enable>
struct codec {
  using herd_default_rules = void;  // absent from user specializations (see `encodable`)

  static void encode(encoder& e, const T& v) {
    detail::require_encodable<T>();
    constexpr int rule = detail::plan_of<T>.rule;
    if constexpr (rule == 0) {
      // refused: the static_assert above says why (nothing more is instantiated)
    } else if constexpr (rule == 2) {
      e.bytes(&v, sizeof v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      e.size(v.size());
      e.bytes(v.data(), v.size());
    } else if constexpr (detail::is_std_array<T>) {
      for (const auto& item : v) e.value(item);
    } else if constexpr (detail::is_sequence<T> || detail::is_associative<T>) {
      e.size(v.size());
      if constexpr (detail::is_instance<T, std::vector> &&
                    detail::verdict_of<typename T::value_type> == detail::verdict::raw &&
                    !std::is_same_v<typename T::value_type, bool>) {
        e.bytes(v.data(), v.size() * sizeof(typename T::value_type));
      } else {
        for (const auto& item : v) e.value(item);
      }
    } else if constexpr (detail::is_instance<T, std::optional>) {
      const bool present = v.has_value();
      e.value(present);
      if (present) e.value(*v);
    } else if constexpr (detail::is_instance<T, std::pair>) {
      e.value(v.first);
      e.value(v.second);
    } else if constexpr (detail::is_instance<T, std::tuple>) {
      std::apply([&](const auto&... items) { (e.value(items), ...); }, v);
    } else if constexpr (detail::is_variant<T>) {
      const std::uint32_t index = static_cast<std::uint32_t>(v.index());
      e.value(index);
      encode_alternative(e, v, std::make_index_sequence<std::tuple_size_v<typename detail::alternatives_of<T>::type>>());
    } else if constexpr (rule == 4) {
      boost::pfr::for_each_field(v, [&](const auto& field) { e.value(field); });
    } else if constexpr (rule == 5) {
      detail::fallback_codec<T>::encode(e, v);
    }
  }

  static T decode(decoder& d) {
    detail::require_encodable<T>();
    constexpr int rule = detail::plan_of<T>.rule;
    if constexpr (rule == 0) {
      decoder::fail("a type herd refuses");  // never runs: the static_assert above stops the build
    } else if constexpr (std::is_same_v<T, bool>) {
      // Any other byte would be a bool with an impossible value (undefined behaviour to read).
      std::uint8_t b;
      d.bytes(&b, 1);
      if (b > 1) decoder::fail("a bool is neither 0 nor 1");
      return b == 1;
    } else if constexpr (rule == 2) {
      T v;
      d.bytes(&v, sizeof v);
      return v;
    } else if constexpr (std::is_same_v<T, std::string>) {
      const std::size_t n = d.size();
      const std::string_view part = d.take(n);
      std::string v;
      if (n >= detail::prefault_from) {
        v.reserve(n);
        detail::prefault(v.data(), n);
      }
      v.assign(part);
      return v;
    } else if constexpr (detail::is_std_array<T>) {
      T v;
      for (auto& item : v) item = d.value<typename T::value_type>();
      return v;
    } else if constexpr (detail::is_sequence<T>) {
      using item_type = typename T::value_type;
      const std::size_t n = d.size();
      T v;
      if constexpr (detail::is_instance<T, std::vector> && detail::verdict_of<item_type> == detail::verdict::raw &&
                    !std::is_same_v<item_type, bool>) {
        if (n > d.remaining() / sizeof(item_type)) decoder::fail("a vector is longer than its message");
        if (n * sizeof(item_type) >= detail::prefault_from) {
          v.reserve(n);
          detail::prefault(v.data(), n * sizeof(item_type));
        }
        if constexpr (std::is_same_v<item_type, char> || std::is_same_v<item_type, unsigned char> ||
                      std::is_same_v<item_type, std::byte>) {
          // Types that may view any bytes: one copy, without zeroing the vector first (resize).
          const std::string_view part = d.take(n);
          const auto* first = reinterpret_cast<const item_type*>(part.data());
          v.assign(first, first + n);
        } else {
          v.resize(n);
          d.bytes(v.data(), n * sizeof(item_type));
        }
      } else {
        for (std::size_t i = 0; i < n; ++i) v.push_back(d.value<item_type>());
      }
      return v;
    } else if constexpr (detail::is_associative<T>) {
      using item_type = std::remove_const_t<typename T::value_type>;
      const std::size_t n = d.size();
      T v;
      for (std::size_t i = 0; i < n; ++i) {
        if constexpr (detail::is_instance<item_type, std::pair>)
          v.insert(d.value<std::pair<std::remove_const_t<typename item_type::first_type>, typename item_type::second_type>>());
        else
          v.insert(d.value<item_type>());
      }
      return v;
    } else if constexpr (detail::is_instance<T, std::optional>) {
      if (!d.value<bool>()) return T();
      return T(d.value<typename T::value_type>());
    } else if constexpr (detail::is_instance<T, std::pair>) {
      auto first = d.value<std::remove_const_t<typename T::first_type>>();
      auto second = d.value<typename T::second_type>();
      return T(std::move(first), std::move(second));
    } else if constexpr (detail::is_instance<T, std::tuple>) {
      return decode_tuple(d, std::make_index_sequence<std::tuple_size_v<T>>());
    } else if constexpr (detail::is_variant<T>) {
      const auto index = d.value<std::uint32_t>();
      return decode_variant(d, index, std::make_index_sequence<std::tuple_size_v<typename detail::alternatives_of<T>::type>>());
    } else if constexpr (rule == 4) {
      T v{};
      boost::pfr::for_each_field(v, [&](auto& field) { field = d.value<std::remove_cvref_t<decltype(field)>>(); });
      return v;
    } else {
      return detail::fallback_codec<T>::decode(d);
    }
  }

 private:
  template <std::size_t... I>
  static T decode_tuple(decoder& d, std::index_sequence<I...>) {
    // Braced initialization evaluates left to right, in field order.
    return T{d.value<std::tuple_element_t<I, T>>()...};
  }

  template <std::size_t... I>
  static void encode_alternative(encoder& e, const T& v, std::index_sequence<I...>) {
    using std::get;  // the variant's own, found by argument-dependent lookup
    ((v.index() == I ? (e.value(get<I>(v)), 0) : 0), ...);
  }

  template <std::size_t... I>
  static T decode_variant(decoder& d, std::uint32_t index, std::index_sequence<I...>) {
    std::optional<T> v;
    ((index == I ? (v.emplace(std::in_place_index<I>, d.value<detail::alternative_t<T, I>>()), 0) : 0), ...);
    if (!v) decoder::fail("a variant's index is out of range");
    return std::move(*v);
  }
};

/// True if `T` can cross a process boundary: a `codec<T>` specialization exists, or herd's
/// rules cover `T` and everything it holds (fields, C-array elements, container elements, at any
/// depth), with no pointer, view or `std::function` among them. Never a hard error: where it is
/// false, encoding `T` is the compile-time error that names the reason.
template <typename T>
concept encodable = detail::accepted(detail::verdict_of<T>);

template <typename T>
void encoder::value(const T& v) {
  codec<T>::encode(*this, v);
}

template <typename T>
T decoder::value() {
  return codec<T>::decode(*this);
}

/// Encodes `value` as bytes.
template <typename T>
std::string encode(const T& value) {
  std::string out;
  encoder e(out);
  e.value(value);
  return out;
}

/// Decodes a whole message; bytes left over mean it was not a `T` (`errc::bad_message`).
template <typename T>
T decode(std::string_view bytes) {
  decoder d(bytes);
  T value = d.value<T>();
  if (d.remaining() != 0) decoder::fail("bytes are left over after the value");
  return value;
}

}  // namespace herd
