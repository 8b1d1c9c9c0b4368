#include <herd/codec.hpp>  // first: the header stands alone

#include <doctest/doctest.h>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

struct plain {
  int x;
  double y;
  friend bool operator==(const plain&, const plain&) = default;
};

struct record {  // an aggregate with non-trivial fields: Boost.PFR, field by field
  std::string name;
  std::vector<int> values;
  std::optional<std::string> note;
  friend bool operator==(const record&, const record&) = default;
};

class with_cereal {  // neither trivial nor an aggregate: cereal
 public:
  with_cereal() = default;
  explicit with_cereal(std::string text) : text_(std::move(text)), words_{text_, text_} {}
  template <class Archive>
  void serialize(Archive& archive) {
    archive(text_, words_);
  }
  friend bool operator==(const with_cereal&, const with_cereal&) = default;

 private:
  std::string text_;
  std::vector<std::string> words_;
};

struct celsius {  // a user's own codec: stored as tenths of a degree
  double degrees;
};

}  // namespace

// [snippet:custom-codec]
template <>
struct herd::codec<celsius> {
  static void encode(encoder& e, const celsius& c) { e.value(static_cast<std::int32_t>(c.degrees * 10)); }
  static celsius decode(decoder& d) { return celsius{d.value<std::int32_t>() / 10.0}; }
};
// [/snippet]

namespace {
template <typename T>
T round_trip(const T& value) {
  return herd::decode<T>(herd::encode(value));
}
}  // namespace

TEST_SUITE("codec") {
  TEST_CASE("trivially copyable values travel as their bytes") {
    CHECK(round_trip(42) == 42);
    CHECK(round_trip(3.5) == 3.5);
    CHECK(round_trip(plain{1, 2.5}) == plain{1, 2.5});
    CHECK(herd::encode(plain{1, 2.5}).size() == sizeof(plain));
    CHECK(round_trip(std::chrono::milliseconds(7)) == std::chrono::milliseconds(7));
    CHECK(round_trip(std::array<int, 3>{1, 2, 3}) == std::array<int, 3>{1, 2, 3});
  }

  TEST_CASE("strings, containers and vocabulary types round-trip") {
    CHECK(round_trip(std::string("hello\0world", 11)) == std::string("hello\0world", 11));
    CHECK(round_trip(std::string()).empty());
    CHECK(round_trip(std::vector<int>{1, 2, 3}) == std::vector<int>{1, 2, 3});
    CHECK(round_trip(std::vector<std::string>{"a", "", "ccc"}) == std::vector<std::string>{"a", "", "ccc"});
    CHECK(round_trip(std::vector<bool>{true, false, true}) == std::vector<bool>{true, false, true});
    std::map<std::string, int> counts{{"a", 1}, {"b", 2}};
    CHECK(round_trip(counts) == counts);
    CHECK(round_trip(std::optional<int>()) == std::nullopt);
    CHECK(round_trip(std::optional<std::string>("x")) == std::optional<std::string>("x"));
    CHECK(round_trip(std::pair<int, std::string>(1, "one")) == std::pair<int, std::string>(1, "one"));
    CHECK(round_trip(std::tuple<int, std::string, double>(1, "a", 2.0)) ==
          std::tuple<int, std::string, double>(1, "a", 2.0));
    using v = std::variant<int, std::string>;
    CHECK(round_trip(v(std::string("s"))) == v(std::string("s")));
    CHECK(round_trip(v(5)) == v(5));
  }

  TEST_CASE("aggregates go field by field and cereal types through cereal") {
    record r{"name", {1, 2}, std::string("note")};
    CHECK(round_trip(r) == r);
    CHECK(round_trip(with_cereal("text")) == with_cereal("text"));
    CHECK(round_trip(std::vector<record>{r, r}).size() == 2);
  }

  TEST_CASE("a specialization of herd::codec is used, also inside containers") {
    CHECK(herd::encode(celsius{21.5}).size() == sizeof(std::int32_t));
    CHECK(round_trip(celsius{21.5}).degrees == doctest::Approx(21.5));
    CHECK(round_trip(std::vector<celsius>{{1.0}, {2.0}})[1].degrees == doctest::Approx(2.0));
    CHECK(herd::encodable<celsius>);
    CHECK(herd::encodable<record>);
    CHECK_FALSE(herd::encodable<int*>);
  }

  TEST_CASE("truncated, padded or malformed bytes are bad_message, never a crash") {
    const std::string bytes = herd::encode(record{"name", {1, 2, 3}, std::nullopt});
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      CHECK_THROWS_WITH_AS(herd::decode<record>(bytes.substr(0, cut)), doctest::Contains("cannot decode"),
                           boost::system::system_error);
    }
    try {
      herd::decode<int>(herd::encode(std::int64_t(1)));
      FAIL("no exception");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == herd::errc::bad_message);
    }
    std::string huge_length(8, '\xff');
    CHECK_THROWS_AS(herd::decode<std::string>(huge_length), boost::system::system_error);
    using int_or_char = std::variant<int, char>;
    CHECK_THROWS_AS(herd::decode<int_or_char>(herd::encode(std::uint32_t(9))), boost::system::system_error);
    CHECK_THROWS_AS(herd::decode<with_cereal>(herd::encode(std::string("junk"))), boost::system::system_error);
  }

  TEST_CASE("large strings and raw vectors decode exact into memory made present first") {
    // From 4 MiB (detail::prefault_from) their memory is populated in one call before the copy;
    // byte vectors are filled without being zeroed first. Just below and above that size.
    for (const std::size_t size : {(std::size_t(4) << 20) - 1, (std::size_t(5) << 20) + 3}) {
      std::string pattern(251, '\0');  // a prime length: no two pages alike
      for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>(i * 7);
      std::string text;
      while (text.size() < size) text.append(pattern, 0, std::min(pattern.size(), size - text.size()));
      CHECK(round_trip(text) == text);
      const std::vector<char> chars(text.begin(), text.end());
      CHECK(round_trip(chars) == chars);
      const auto* first = reinterpret_cast<const unsigned char*>(text.data());
      const std::vector<unsigned char> bytes(first, first + size);
      CHECK(round_trip(bytes) == bytes);
      const std::vector<std::byte> raw(reinterpret_cast<const std::byte*>(first), reinterpret_cast<const std::byte*>(first) + size);
      CHECK(round_trip(raw) == raw);
      std::vector<std::uint32_t> words(size / 4);
      std::memcpy(words.data(), text.data(), words.size() * 4);
      CHECK(round_trip(words) == words);
      // A large length over a short message is refused before anything is allocated.
      const std::string cut = herd::encode(chars).substr(0, size / 2);
      CHECK_THROWS_AS(herd::decode<std::vector<char>>(cut), boost::system::system_error);
      CHECK_THROWS_AS(herd::decode<std::string>(herd::encode(text).substr(0, size / 2)), boost::system::system_error);
    }
  }

  TEST_CASE("a bool byte other than 0 or 1 is bad_message, empty containers decode (found by the fuzzer)") {
    CHECK_THROWS_WITH_AS(herd::decode<bool>(std::string(1, '\x02')), doctest::Contains("neither 0 nor 1"),
                         boost::system::system_error);
    CHECK_THROWS_AS(herd::decode<std::optional<int>>(std::string("\x07\0\0\0\0", 5)), boost::system::system_error);
    CHECK(herd::decode<bool>(herd::encode(true)));
    CHECK(herd::decode<std::vector<int>>(herd::encode(std::vector<int>{})).empty());
  }
}
