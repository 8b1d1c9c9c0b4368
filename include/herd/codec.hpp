/// @file herd/codec.hpp
/// Values to bytes and back, for everything that crosses a process boundary (results of
/// function children, queue and pipe messages).
///
/// How a type travels, first match wins:
///  1. a specialization of `herd::codec<T>` you write (the one customization point);
///  2. trivially copyable types (not pointers): their bytes, as they are;
///  3. `std::string`, and containers, `optional`, `pair`, `tuple`, `variant` of encodable types;
///  4. aggregates (plain structs) field by field, through Boost.PFR;
///  5. types cereal can serialize (a `serialize` or `save`/`load` member or function).
/// A type none of these covers is a compile-time error saying so.
///
/// The bytes are for processes running the same binary (fork children, pool workers): sizes
/// and layouts are the machine's own, not a portable format.
#pragma once

#include <herd/error.hpp>

#include <boost/pfr.hpp>
#include <cereal/archives/binary.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
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

template <typename T>
inline constexpr bool always_false = false;

template <typename T, template <typename...> class Template>
inline constexpr bool is_instance = false;
template <template <typename...> class Template, typename... A>
inline constexpr bool is_instance<Template<A...>, Template> = true;

template <typename T>
inline constexpr bool is_std_array = false;
template <typename T, std::size_t N>
inline constexpr bool is_std_array<std::array<T, N>> = true;

template <typename T>
inline constexpr bool is_sequence = is_instance<T, std::vector> || is_instance<T, std::deque> || is_instance<T, std::list>;
template <typename T>
inline constexpr bool is_associative = is_instance<T, std::map> || is_instance<T, std::multimap> ||
                                       is_instance<T, std::unordered_map> || is_instance<T, std::set> ||
                                       is_instance<T, std::multiset> || is_instance<T, std::unordered_set>;

template <typename T>
inline constexpr bool is_raw = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                               !std::is_member_pointer_v<T> && !std::is_array_v<T>;

template <typename T>
inline constexpr bool is_cereal = cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
                                  cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

// Which rule encodes T (0 = none). Rule numbers follow the file comment.
template <typename T>
constexpr int rule_for() {
  if constexpr (std::is_reference_v<T> || std::is_const_v<T> || std::is_pointer_v<T> ||
                std::is_member_pointer_v<T>) {
    return 0;  // an address means nothing in another process
  } else if constexpr (is_raw<T>) {
    return 2;
  } else if constexpr (std::is_same_v<T, std::string> || is_sequence<T> || is_associative<T> || is_std_array<T> ||
                       is_instance<T, std::optional> || is_instance<T, std::pair> || is_instance<T, std::tuple> ||
                       is_instance<T, std::variant>) {
    return 3;
  } else if constexpr (std::is_aggregate_v<T> && !std::is_array_v<T> && std::is_default_constructible_v<T>) {
    return 4;
  } else if constexpr (is_cereal<T>) {
    return 5;
  } else {
    return 0;
  }
}

}  // namespace detail

template <typename T, typename Enable>
struct codec {
  using herd_default_rules = void;  // absent from user specializations (see `encodable`)

  static void encode(encoder& e, const T& v) {
    constexpr int rule = detail::rule_for<T>();
    static_assert(rule != 0,
                  "herd::codec cannot send this type between processes: make it trivially copyable, a plain "
                  "aggregate struct of encodable fields, give it a cereal serialize() function, or specialize "
                  "herd::codec<T> (herd/codec.hpp)");
    if constexpr (rule == 2) {
      e.bytes(&v, sizeof v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      e.size(v.size());
      e.bytes(v.data(), v.size());
    } else if constexpr (detail::is_std_array<T>) {
      for (const auto& item : v) e.value(item);
    } else if constexpr (detail::is_sequence<T> || detail::is_associative<T>) {
      e.size(v.size());
      if constexpr (detail::is_instance<T, std::vector> && detail::is_raw<typename T::value_type> &&
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
    } else if constexpr (detail::is_instance<T, std::variant>) {
      const std::uint32_t index = static_cast<std::uint32_t>(v.index());
      e.value(index);
      std::visit([&](const auto& item) { e.value(item); }, v);
    } else if constexpr (rule == 4) {
      boost::pfr::for_each_field(v, [&](const auto& field) { e.value(field); });
    } else if constexpr (rule == 5) {
      std::ostringstream stream;
      {
        cereal::BinaryOutputArchive archive(stream);
        archive(v);
      }
      const std::string bytes = std::move(stream).str();
      e.value(bytes);
    }
  }

  static T decode(decoder& d) {
    constexpr int rule = detail::rule_for<T>();
    static_assert(rule != 0, "herd::codec cannot receive this type: see herd::codec<T>::encode");
    if constexpr (std::is_same_v<T, bool>) {
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
      if constexpr (detail::is_instance<T, std::vector> && detail::is_raw<item_type> &&
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
    } else if constexpr (detail::is_instance<T, std::variant>) {
      const auto index = d.value<std::uint32_t>();
      return decode_variant(d, index, std::make_index_sequence<std::variant_size_v<T>>());
    } else if constexpr (rule == 4) {
      T v{};
      boost::pfr::for_each_field(v, [&](auto& field) { field = d.value<std::remove_cvref_t<decltype(field)>>(); });
      return v;
    } else if constexpr (rule == 5) {
      std::istringstream stream(d.value<std::string>());
      cereal::BinaryInputArchive archive(stream);
      T v;
      try {
        archive(v);
      } catch (const cereal::Exception&) {
        decoder::fail("cereal could not read the message");
      }
      return v;
    }
  }

 private:
  template <std::size_t... I>
  static T decode_tuple(decoder& d, std::index_sequence<I...>) {
    // Braced initialization evaluates left to right, in field order.
    return T{d.value<std::tuple_element_t<I, T>>()...};
  }

  template <std::size_t... I>
  static T decode_variant(decoder& d, std::uint32_t index, std::index_sequence<I...>) {
    std::optional<T> v;
    ((index == I ? (v.emplace(std::in_place_index<I>, d.value<std::variant_alternative_t<I, T>>()), 0) : 0), ...);
    if (!v) decoder::fail("a variant's index is out of range");
    return std::move(*v);
  }
};

/// True if `T` can cross a process boundary: a `codec<T>` specialization exists, or herd's
/// rules cover it (for containers, checked one level deep; the elements' own codec reports the rest).
template <typename T>
concept encodable = !requires { typename codec<T>::herd_default_rules; } || detail::rule_for<T>() != 0;

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
