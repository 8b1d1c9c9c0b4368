// libFuzzer target: whatever bytes arrive in a channel's packet, the framing parser and the
// codec either accept them or reject them cleanly (errc::bad_message); they never read out of
// bounds, never build an impossible value, and what they accept encodes back to the same bytes.
#include "detail/framing.hpp"

#include <herd/codec.hpp>
#include <herd/cereal.hpp>


#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <cstdlib>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

struct plain {  // an aggregate, through Boost.PFR
  int id;
  std::optional<std::string> label;
  std::list<short> values;
};

struct archived {  // a cereal type
  std::string name;
  std::vector<int> numbers;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, numbers);
  }
};

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "decoder fuzz: %s\n", what);
  std::abort();
}

// Decodes `bytes` as T. Accepted bytes must be T's canonical encoding when `canonical`.
template <typename T>
void try_decode(std::string_view bytes, bool canonical) {
  try {
    T value = herd::decode<T>(bytes);
    if (canonical && herd::encode(value) != bytes) bug("accepted bytes that do not encode back to themselves");
  } catch (const boost::system::system_error& e) {
    if (e.code() != herd::errc::bad_message) bug("a decoding error other than bad_message");
  }
}

void decode_as(std::uint8_t type, std::string_view bytes) {
  switch (type % 9) {
    case 0: try_decode<std::string>(bytes, true); break;
    case 1: try_decode<std::vector<std::uint32_t>>(bytes, true); break;
    case 2: try_decode<std::tuple<int, std::optional<int>, std::string>>(bytes, true); break;
    case 3: try_decode<std::variant<int, std::string, std::vector<double>>>(bytes, true); break;
    case 4: try_decode<std::map<std::string, std::vector<std::string>>>(bytes, false); break;  // duplicate keys merge
    case 5: try_decode<std::vector<bool>>(bytes, true); break;
    case 6: try_decode<plain>(bytes, true); break;
    case 7: try_decode<archived>(bytes, false); break;  // cereal's own format
    case 8: try_decode<std::vector<std::optional<std::pair<bool, std::string>>>>(bytes, true); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first byte chooses the descriptor count the packet came with and the message type.
  const std::size_t descriptors = data[0] & 3;
  const std::uint8_t type = data[0] >> 2;
  const std::string_view packet(reinterpret_cast<const char*>(data + 1), size - 1);

  decode_as(type, packet);  // the codec alone, on any bytes

  std::vector<herd::detail::record> records;
  if (!herd::detail::parse_packet(packet, descriptors, records)) return 0;
  std::size_t memfds = 0;
  for (const auto& r : records) {
    switch (r.kind) {
      case herd::detail::record_kind::inline_bytes:
        if (r.bytes.data() < packet.data() || r.bytes.data() + r.bytes.size() > packet.data() + packet.size())
          bug("a record outside its packet");
        decode_as(type, r.bytes);
        break;
      case herd::detail::record_kind::slab:
      case herd::detail::record_kind::memfd:
        if (records.size() != 1) bug("an out-of-band record shares its packet");
        memfds += r.kind == herd::detail::record_kind::memfd;
        break;
      default: bug("a record of unknown kind");
    }
  }
  if (memfds != descriptors) bug("descriptors and memfd records do not match");
  return 0;
}
