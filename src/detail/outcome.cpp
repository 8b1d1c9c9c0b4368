#include "outcome.hpp"

#include <cstring>

namespace herd::detail {

std::string encode_exception(std::string_view type, std::string_view message) {
  std::string record = "E";
  const auto length = static_cast<std::uint32_t>(type.size());
  record.append(reinterpret_cast<const char*>(&length), sizeof length);
  record += type;
  record += message;
  return record;
}

parsed_outcome parse_outcome(std::string_view received) noexcept {
  if (received.empty()) return {};
  if (received[0] == 'R') return {outcome_kind::result, received.substr(1), {}, {}};
  if (received[0] == 'E') {
    std::uint32_t length = 0;
    if (received.size() >= 1 + sizeof length) {
      std::memcpy(&length, received.data() + 1, sizeof length);
      if (received.size() >= 1 + sizeof length + length) {
        const std::size_t message_at = 1 + sizeof length + length;
        return {outcome_kind::exception, {}, received.substr(1 + sizeof length, length), received.substr(message_at)};
      }
    }
    return {outcome_kind::exception, {}, lost_exception_type, lost_exception_message};
  }
  return {outcome_kind::unreadable, received, {}, {}};
}

}  // namespace herd::detail
