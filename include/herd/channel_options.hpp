/// @file herd/channel_options.hpp
/// `herd::channel_options`: how a queue or a pipe holds, packs and carries its messages.
#pragma once

#include <herd/detail/chrono.hpp>

#include <cstddef>

namespace herd {

/// Options of a channel (queue or pipe).
struct channel_options {
  /// Queues: at most this many messages in flight (put waits when full); 0 is unbounded.
  std::size_t maxsize = 0;
  /// Most small messages one packet carries (put_many always packs; put packs only with
  /// `pack_puts`). A receiver takes a whole packet, so this also bounds how much of a backlog
  /// one receiver can hold while others wait (measured: 16 keeps four consumers even).
  std::size_t batch = 16;
  /// Let a blocking put() pack messages while receivers are behind, instead of sending each at
  /// once: several times the throughput, but a packed message is in this process, not in the
  /// kernel, until its packet leaves (at the latest before this process waits on herd, forks or
  /// exits normally) — a SIGKILL then loses up to `batch - 1` messages whose put() returned.
  bool pack_puts = false;
  /// Messages too large for a packet travel through a shared slab of this many slots…
  std::size_t slab_slots = 4;
  /// …each this large; larger messages (or all slots busy) go through a memfd.
  std::size_t slab_slot_size = std::size_t(2) << 20;
  /// A blocking receive (get, recv) that finds nothing polls this long before it sleeps: on a
  /// virtual machine a sleeping process takes ~20 µs to wake, so a conversation whose replies
  /// come quickly runs several times faster. An idle receiver spends at most this much CPU
  /// per receive. Zero sleeps at once. Awaiting receives never poll: they would stall the loop.
  std::chrono::microseconds spin{50};
};

}  // namespace herd
