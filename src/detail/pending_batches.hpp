// The channels of this process with a packed batch not sent yet (rule 5 of
// src/detail/channel_state.hpp, and more: a batch never waits for a sender that waits).
// flush_all_channels (include/herd/detail/channel.hpp) sends them all; it is compiled here.
#pragma once

#include <herd/detail/channel.hpp>

namespace herd::detail {

/// `s` holds a packed batch: flush_all_channels must send it. The first call registers
/// flush_all_channels to run before herd waits for a child, before a fork, as a function child
/// exits, and at this process's exit.
void remember_pending(channel::state* s);
/// `s` holds no batch any more (or is going away).
void forget_pending(channel::state* s) noexcept;

}  // namespace herd::detail
