// The system calls under a channel: the SOCK_SEQPACKET socketpair (packets with SCM_RIGHTS),
// the eventfds (maxsize places, "all done"), and the private epoll descriptors Asio waits on.
// Rules 1 and 4 of src/detail/channel_state.hpp are kept here; no counting, no policy.
#pragma once

#include <herd/config.hpp>
#include <herd/detail/deadline.hpp>

#include "descriptors.hpp"
#include "system_code.hpp"
#include "unique_fd.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace herd::detail {

/// The most descriptors one received packet may carry (its control buffer's room).
constexpr std::size_t max_descriptors_per_packet = 16;

/// A connected SOCK_SEQPACKET pair, both above stdio and close-on-exec. Throws.
std::array<unique_fd, 2> make_socketpair();

/// Sends one packet (with `descriptor`, if >= 0, by SCM_RIGHTS), blocking or not; waits up to
/// the deadline. Returns success, would_block, timed_out, closed, message_too_large or a
/// system error.
error_code send_packet(int fd, std::string_view packet, int descriptor, bool block, deadline deadline);

/// One packet as it came off the socket.
struct received_packet {
  std::size_t size = 0;                 // bytes received into the buffer
  std::vector<unique_fd> descriptors;   // what came with it (SCM_RIGHTS), close-on-exec
  bool descriptors_dropped = false;     // MSG_CTRUNC: the kernel had no free descriptor for one
};

/// Takes one packet off `fd` into `buffer` (resized to max_packet), always with a control
/// buffer (rule 4). Returns success, would_block, closed (end of file), bad_message (a
/// truncated or empty packet) or a system error.
error_code receive_packet(int fd, std::vector<char>& buffer, bool block, received_packet& out);

/// Waits until `fd` reports `events` (poll), or the deadline passes: false then. An error of
/// poll itself counts as ready, so that the caller's I/O reports the problem.
bool wait_ready(int fd, short events, deadline deadline);
/// True once the peer has shut the socket down (end of file waits).
bool hung_up(int fd);
/// True if sends on `fd` fail for good (the socket was shut down by any process).
bool shut_down_for_sending(int fd);
/// Bytes sent on `fd` and not yet received (SIOCOUTQ); 0 if the kernel cannot tell.
std::size_t bytes_waiting_to_send(int fd);
/// True if nothing waits to be received on `fd` (SIOCINQ); false if the kernel cannot tell.
bool nothing_to_receive(int fd);


/// A private epoll descriptor watching one shared descriptor: Asio waits on it, so the shared
/// one never becomes O_NONBLOCK (rule 1).
struct watcher {
  watcher(const asio::any_io_executor& ex, int watched, std::uint32_t events);
  asio::posix::stream_descriptor stream;
};

/// A process's watchers of one channel, made on first use.
struct waiters {
  std::optional<watcher> receive, send, token, done;
  /// Closes the descriptors of a forked copy's watchers without touching the objects, which
  /// belong to the parent's io_context (`inherited` is leaked on purpose).
  static void abandon(waiters* inherited) noexcept;
};

}  // namespace herd::detail
