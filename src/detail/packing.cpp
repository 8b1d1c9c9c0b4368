#include "packing.hpp"

#include "framing.hpp"

#include <algorithm>

namespace herd::detail {

std::size_t messages_per_packet(std::size_t batch) noexcept { return std::max<std::size_t>(1, batch); }

bool travels_out_of_band(std::size_t message_size) noexcept { return message_size > max_inline; }

bool batch_has_room(std::size_t batch_count, std::size_t batch_bytes, std::size_t message_size,
                    std::size_t limit) noexcept {
  return batch_count < limit && batch_bytes + record_header + message_size <= max_packet;
}

packing_action decide_packing(const packing_inputs& in) noexcept {
  if (travels_out_of_band(in.message_size)) return packing_action::send_out_of_band;
  const std::size_t limit = messages_per_packet(in.batch);
  if (!in.may_pack || limit == 1) return packing_action::send_alone;
  if (in.batch_count == 0) {
    // Receivers keeping up: a packed message would only wait.
    if (!in.socket_backlog) return packing_action::measure_backlog;
    if (*in.socket_backlog <= backlog_bytes) return packing_action::send_alone;
  }
  // A full batch must leave before this message may join one (the message after it starts the
  // next batch, alone in it: never full at once, for limit > 1).
  if (!batch_has_room(in.batch_count, in.batch_bytes, in.message_size, limit)) return packing_action::flush_then_append;
  return in.batch_count + 1 >= limit ? packing_action::append_then_flush : packing_action::append;
}

}  // namespace herd::detail
