// Large messages in memfds (rule 3 of src/detail/channel_state.hpp: what outgrows a packet and
// finds no free slab slot). The sender writes the message with pwritev (faster here than
// writing through a mapping, which faults on every page) and seals it; the receiver maps it
// read-only and decodes in place. Measured for 1.5 GiB (bench/README.md): every pass over fresh
// memory costs 0.5–1 s on this VM (more when the host must back it again), a warm copy 0.15 s,
// so the number of fresh buffers a message goes through is what counts.
// outgoing_message and received_message (include/herd/detail/channel.hpp) are compiled here.
#pragma once

#include <herd/detail/channel.hpp>

#include "unique_fd.hpp"

#include <cstdint>
#include <string>

namespace herd::detail {

/// A sealed memfd holding `bytes`, in `out`. Returns the system error that prevented it.
error_code write_message_memfd(std::string_view bytes, unique_fd& out);

/// The message of `length` bytes a memfd brought (`fd` stays the caller's), in `out`: mapped
/// if herd's sender sealed it, else read into `spare`'s storage. bad_message if the memfd is
/// shorter than `length`.
error_code read_message_memfd(int fd, std::uint64_t length, std::string& spare, received_message& out);

}  // namespace herd::detail
