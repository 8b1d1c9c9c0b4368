#include "framing.hpp"

#include <cstring>

namespace herd::detail {
namespace {

void append_header(std::string& packet, record_kind kind, std::size_t length) {
  const std::uint32_t header = (static_cast<std::uint32_t>(kind) << 30) | static_cast<std::uint32_t>(length);
  packet.append(reinterpret_cast<const char*>(&header), sizeof header);
}

template <typename T>
void append_raw(std::string& packet, T value) {
  packet.append(reinterpret_cast<const char*>(&value), sizeof value);
}

template <typename T>
T read_raw(std::string_view bytes, std::size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof value);
  return value;
}

constexpr std::size_t slab_body = sizeof(std::uint32_t) + sizeof(std::uint64_t);
constexpr std::size_t memfd_body = sizeof(std::uint64_t);

}  // namespace

void append_inline(std::string& packet, std::string_view message) {
  append_header(packet, record_kind::inline_bytes, message.size());
  packet.append(message);
}

std::string slab_packet(std::uint32_t slot, std::uint64_t length) {
  std::string packet;
  append_header(packet, record_kind::slab, slab_body);
  append_raw(packet, slot);
  append_raw(packet, length);
  return packet;
}

std::string memfd_packet(std::uint64_t length) {
  std::string packet;
  append_header(packet, record_kind::memfd, memfd_body);
  append_raw(packet, length);
  return packet;
}

bool parse_packet(std::string_view packet, std::size_t descriptors, std::vector<record>& out) {
  std::vector<record> records;
  std::size_t at = 0;
  std::size_t memfds = 0;
  bool out_of_band = false;
  while (at < packet.size()) {
    if (packet.size() - at < record_header) return false;
    const auto header = read_raw<std::uint32_t>(packet, at);
    at += record_header;
    const auto kind = static_cast<record_kind>(header >> 30);
    const std::size_t length = header & ((1u << 30) - 1);
    if (length > packet.size() - at) return false;
    const std::string_view body = packet.substr(at, length);
    at += length;
    switch (kind) {
      case record_kind::inline_bytes:
        records.push_back(record{kind, body});
        break;
      case record_kind::slab:
        if (length != slab_body) return false;
        records.push_back(record{kind, {}, read_raw<std::uint32_t>(body, 0), read_raw<std::uint64_t>(body, 4)});
        out_of_band = true;
        break;
      case record_kind::memfd:
        if (length != memfd_body) return false;
        records.push_back(record{kind, {}, 0, read_raw<std::uint64_t>(body, 0)});
        out_of_band = true;
        ++memfds;
        break;
      default:
        return false;
    }
  }
  if (records.empty()) return false;
  if (out_of_band && records.size() != 1) return false;
  if (memfds != descriptors) return false;
  out.insert(out.end(), records.begin(), records.end());
  return true;
}

}  // namespace herd::detail
