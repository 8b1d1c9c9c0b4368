// How messages travel in a channel's packets (SOCK_SEQPACKET: one send is one packet, delivered
// whole to exactly one receiver). No Asio here: the fuzz target compiles this alone.
//
// A packet is a sequence of records, each a 4-byte header — kind in the top 2 bits, length of
// what follows in the rest — and then that many bytes:
//   inline: the message itself;
//   slab:   u32 slot index, u64 length: the message waits in slot `index` of the shared slab;
//   memfd:  u64 length: the message is in a memfd passed with the packet (SCM_RIGHTS).
// Out-of-band records (slab, memfd) always travel alone in their packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace herd::detail {

/// The largest packet herd sends: small enough for the kernel's default socket buffers and for
/// allocations that need no high-order pages (shared/research/queue-prototype.md).
constexpr std::size_t max_packet = 64 * 1024;
constexpr std::size_t record_header = 4;
/// Messages larger than this leave the packet (slab or memfd).
constexpr std::size_t max_inline = max_packet - record_header;

enum class record_kind : std::uint8_t { inline_bytes = 0, slab = 1, memfd = 2 };

struct record {
  record_kind kind;
  std::string_view bytes;    // inline: the message
  std::uint32_t slot = 0;    // slab
  std::uint64_t length = 0;  // slab, memfd
};

/// Appends an inline record.
void append_inline(std::string& packet, std::string_view message);
/// A packet holding one out-of-band record.
std::string slab_packet(std::uint32_t slot, std::uint64_t length);
std::string memfd_packet(std::uint64_t length);

/// Splits a received packet into records. False (and `out` unchanged) if it is malformed: a
/// record running past the end, an unknown kind, an out-of-band record that is not alone, a
/// memfd record without its descriptor (`descriptors` received), or more descriptors than
/// memfd records.
bool parse_packet(std::string_view packet, std::size_t descriptors, std::vector<record>& out);

}  // namespace herd::detail
