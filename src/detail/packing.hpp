// When a small message joins a batch and when a batch leaves: rules 2 and 3 of
// src/detail/channel_state.hpp as a pure function, with no system call, so that every boundary
// is tested without sockets (tests/packing.cpp). channel::state asks and does what it answers.
#pragma once

#include <cstddef>
#include <optional>

namespace herd::detail {

/// Sending while more than this many bytes wait in the socket (SIOCOUTQ) means receivers are
/// behind: a blocking put that may pack starts a batch.
constexpr std::size_t backlog_bytes = 16 * 1024;

/// The most messages one packet carries for a channel whose options say `batch` (0 counts as 1).
std::size_t messages_per_packet(std::size_t batch) noexcept;

/// True for a message too large for a packet: it travels in the slab or a memfd (rule 3).
bool travels_out_of_band(std::size_t message_size) noexcept;

/// True if a batch of `batch_count` messages in `batch_bytes` bytes of packet can take one more
/// message of `message_size` bytes: fewer than `limit` messages (messages_per_packet), and the
/// packet stays within max_packet.
bool batch_has_room(std::size_t batch_count, std::size_t batch_bytes, std::size_t message_size,
                    std::size_t limit) noexcept;

/// What decide_packing looks at for one message a producer puts.
struct packing_inputs {
  std::size_t message_size = 0;  // the encoded message, in memory
  std::size_t batch = 16;        // channel_options::batch
  bool may_pack = false;         // a blocking put on a channel with pack_puts
  std::size_t batch_count = 0;   // messages in this process's pending batch
  std::size_t batch_bytes = 0;   // the pending batch's packet so far
  /// Bytes sent and not yet received (SIOCOUTQ; 0 if it cannot be read). Empty until asked
  /// for: only a message that could start a batch needs it, and it costs a system call.
  std::optional<std::size_t> socket_backlog;
};

enum class packing_action {
  /// The decision needs `socket_backlog`: measure it and decide again.
  measure_backlog,
  /// After the pending batch (if any, to keep this producer's order), the message travels out
  /// of band.
  send_out_of_band,
  /// After the pending batch (if any), the message goes in a packet of its own.
  send_alone,
  /// The message joins the pending batch (or starts one), which waits for more.
  append,
  /// The message joins the pending batch, which is then full: the batch leaves now.
  append_then_flush,
  /// The pending batch is full, or the message would take its packet past max_packet: the batch
  /// leaves first, then the message starts a new one.
  flush_then_append,
};

/// Rule 2: small messages are packed only while the channel is backlogged (or a batch is already
/// building), at most messages_per_packet to a packet, so one receiver cannot take the whole
/// backlog; rule 3: no packet grows past max_packet.
packing_action decide_packing(const packing_inputs& in) noexcept;

}  // namespace herd::detail
