// The channel packet format on its own, without sockets: what append_inline, slab_packet and
// memfd_packet build, and every malformed packet parse_packet must refuse (its header comment's
// list). tests/fuzz/decoder_fuzz.cpp throws random bytes at the same parser.
#include "detail/framing.hpp"  // first: the header stands alone

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using herd::detail::parse_packet;
using herd::detail::record;
using herd::detail::record_kind;

// A record header as framing.cpp writes it: the kind in the top 2 bits, the length below.
std::string header(unsigned kind, std::uint32_t length) {
  const std::uint32_t word = (static_cast<std::uint32_t>(kind) << 30) | length;
  return std::string(reinterpret_cast<const char*>(&word), sizeof word);
}

// Parses `packet` into a vector that already holds one record: a refused packet must leave it
// as it was, an accepted one appends.
std::vector<record> refused_or_appended(std::string_view packet, std::size_t descriptors, bool& accepted) {
  static const std::string before = "before";
  std::vector<record> out{record{record_kind::inline_bytes, before}};
  accepted = parse_packet(packet, descriptors, out);
  return out;
}

void check_malformed(std::string_view packet, std::size_t descriptors) {
  bool accepted = true;
  const std::vector<record> out = refused_or_appended(packet, descriptors, accepted);
  CHECK_FALSE(accepted);
  REQUIRE(out.size() == 1);
  CHECK(out[0].bytes == "before");
}

}  // namespace

TEST_SUITE("framing") {
  TEST_CASE("one inline record round trips") {
    std::string packet;
    herd::detail::append_inline(packet, "hello");
    CHECK(packet == header(0, 5) + "hello");
    std::vector<record> records;
    REQUIRE(parse_packet(packet, 0, records));
    REQUIRE(records.size() == 1);
    CHECK(records[0].kind == record_kind::inline_bytes);
    CHECK(records[0].bytes == "hello");
  }

  TEST_CASE("sixteen inline records round trip in order with empty and binary ones among them") {
    std::vector<std::string> messages;
    for (int i = 0; i < 16; ++i) {
      std::string message(static_cast<std::size_t>(i * 37 % 101), '\0');
      for (std::size_t j = 0; j < message.size(); ++j) message[j] = static_cast<char>((i + j) * 13 % 256);
      messages.push_back(message);
    }
    std::string packet;
    for (const auto& message : messages) herd::detail::append_inline(packet, message);
    std::vector<record> records;
    REQUIRE(parse_packet(packet, 0, records));
    REQUIRE(records.size() == 16);
    for (std::size_t i = 0; i < 16; ++i) {
      CAPTURE(i);
      CHECK(records[i].kind == record_kind::inline_bytes);
      CHECK(records[i].bytes == messages[i]);
      // Views into the packet, not copies.
      CHECK(records[i].bytes.data() >= packet.data());
      CHECK(records[i].bytes.data() + records[i].bytes.size() <= packet.data() + packet.size());
    }
  }

  TEST_CASE("an accepted packet appends its records after what the output held") {
    std::string packet;
    herd::detail::append_inline(packet, "one");
    herd::detail::append_inline(packet, "two");
    bool accepted = false;
    const std::vector<record> out = refused_or_appended(packet, 0, accepted);
    CHECK(accepted);
    REQUIRE(out.size() == 3);
    CHECK(out[0].bytes == "before");
    CHECK(out[1].bytes == "one");
    CHECK(out[2].bytes == "two");
  }

  TEST_CASE("the largest inline message fills the largest packet") {
    std::string packet;
    herd::detail::append_inline(packet, std::string(herd::detail::max_inline, 'x'));
    CHECK(packet.size() == herd::detail::max_packet);
    std::vector<record> records;
    REQUIRE(parse_packet(packet, 0, records));
    REQUIRE(records.size() == 1);
    CHECK(records[0].bytes.size() == herd::detail::max_inline);
  }

  TEST_CASE("a slab packet carries its slot and length") {
    const std::string packet = herd::detail::slab_packet(7, 0x1'0000'0001ull);
    CHECK(packet.size() == 4 + 4 + 8);
    std::vector<record> records;
    REQUIRE(parse_packet(packet, 0, records));
    REQUIRE(records.size() == 1);
    CHECK(records[0].kind == record_kind::slab);
    CHECK(records[0].slot == 7);
    CHECK(records[0].length == 0x1'0000'0001ull);
    CHECK(records[0].bytes.empty());
  }

  TEST_CASE("a memfd packet carries its length and comes with one descriptor") {
    const std::string packet = herd::detail::memfd_packet(5'000'000);
    CHECK(packet.size() == 4 + 8);
    std::vector<record> records;
    REQUIRE(parse_packet(packet, 1, records));
    REQUIRE(records.size() == 1);
    CHECK(records[0].kind == record_kind::memfd);
    CHECK(records[0].length == 5'000'000);
    CHECK(records[0].bytes.empty());
  }

  TEST_CASE("a zero-length packet is malformed") {
    check_malformed({}, 0);
  }

  TEST_CASE("a record running past the end is malformed") {
    std::string packet;
    herd::detail::append_inline(packet, "hello");
    check_malformed(std::string_view(packet).substr(0, packet.size() - 1), 0);
    check_malformed(header(0, 1), 0);
    const std::string slab = herd::detail::slab_packet(1, 2);
    check_malformed(std::string_view(slab).substr(0, slab.size() - 1), 0);
    const std::string memfd = herd::detail::memfd_packet(3);
    check_malformed(std::string_view(memfd).substr(0, memfd.size() - 1), 1);
  }

  TEST_CASE("a record header cut short is malformed") {
    check_malformed("abc", 0);
    std::string packet;
    herd::detail::append_inline(packet, "hello");
    check_malformed(packet + "xy", 0);  // a second header of two bytes
  }

  TEST_CASE("a record of unknown kind is malformed") {
    check_malformed(header(3, 0), 0);
    check_malformed(header(3, 2) + "ab", 0);
    std::string packet;
    herd::detail::append_inline(packet, "fine");
    check_malformed(packet + header(3, 0), 0);
  }

  TEST_CASE("an out-of-band record that is not alone is malformed") {
    std::string inline_record;
    herd::detail::append_inline(inline_record, "x");
    const std::string slab = herd::detail::slab_packet(0, 100);
    const std::string memfd = herd::detail::memfd_packet(100);
    check_malformed(slab + inline_record, 0);
    check_malformed(inline_record + slab, 0);
    check_malformed(slab + slab, 0);
    check_malformed(memfd + inline_record, 1);
    check_malformed(inline_record + memfd, 1);
    check_malformed(memfd + memfd, 2);
    check_malformed(slab + memfd, 1);
  }

  TEST_CASE("an out-of-band record of the wrong length is malformed") {
    check_malformed(header(1, 8) + std::string(8, '\0'), 0);
    check_malformed(header(1, 16) + std::string(16, '\0'), 0);
    check_malformed(header(2, 4) + std::string(4, '\0'), 1);
    check_malformed(header(2, 12) + std::string(12, '\0'), 1);
  }

  TEST_CASE("a memfd record without its descriptor is malformed") {
    check_malformed(herd::detail::memfd_packet(10), 0);
  }

  TEST_CASE("more descriptors than memfd records are malformed") {
    std::string inline_record;
    herd::detail::append_inline(inline_record, "x");
    check_malformed(inline_record, 1);
    check_malformed(herd::detail::slab_packet(0, 10), 1);
    check_malformed(herd::detail::memfd_packet(10), 2);
  }
}
