// Small descriptor helpers: passing descriptors over unix sockets (SCM_RIGHTS), reading a memfd
// whole, keeping clear of stdio numbers, writing without SIGPIPE, and poll() timeouts.
#pragma once

#include "unique_fd.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <sys/socket.h>

namespace herd::detail {

/// write() that never raises SIGPIPE in the process: a write to a pipe whose reader is gone
/// fails with EPIPE instead (the SIGPIPE it generates is blocked and consumed on this thread).
long write_without_sigpipe(int fd, const void* data, std::size_t size) noexcept;

/// A poll() timeout that reaches `deadline`: rounded up (a truncated one wakes early), 0 once
/// it has passed, -1 (forever) without a deadline.
int poll_timeout_until(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept;

/// Adds `fd` to `message` as SCM_RIGHTS ancillary data, written into `control`, which holds at
/// least CMSG_SPACE(sizeof(int)) bytes aligned for cmsghdr. Plain memory writes: fork-child safe.
void attach_descriptor(msghdr& message, char* control, std::size_t control_size, int fd) noexcept;
/// The same for several: `control` holds at least CMSG_SPACE(sizeof(int) * fds.size()) bytes.
void attach_descriptors(msghdr& message, char* control, std::size_t control_size, std::span<const int> fds) noexcept;
/// Takes ownership of the descriptors a received message carried (SCM_RIGHTS).
std::vector<unique_fd> received_descriptors(msghdr& message);

/// The most descriptors receive_with_descriptors takes with one message.
constexpr std::size_t max_received_descriptors = 16;
/// One recvmsg into `data` (`flags` and MSG_CMSG_CLOEXEC), with room for `max_descriptors`
/// descriptors (at most max_received_descriptors), which it takes into `descriptors`; retried
/// on EINTR. Returns the byte count, or -1 with errno; `message_flags` gets msg_flags.
ssize_t receive_with_descriptors(int fd, std::span<char> data, int flags, std::size_t max_descriptors,
                                 std::vector<unique_fd>& descriptors, int& message_flags);
/// The size of the file (a memfd) behind `fd`, if fstat can tell.
std::optional<std::size_t> file_size(int fd) noexcept;
/// Reads `length` bytes from offset 0 of `fd` (a memfd) into `out`; false if it holds fewer.
bool read_whole(int fd, char* out, std::size_t length) noexcept;

/// An eventfd, close-on-exec and non-blocking (it is shared, and rule 1 holds for eventfds
/// too: everyone opens it so), with `flags` added. Throws.
unique_fd make_eventfd(unsigned initial, int flags);
/// Eventfd semaphores (a queue's maxsize places), flags ("all done") and wake-ups (a pool's
/// sleeping side): take one unit without waiting, add `count`, or empty it.
bool eventfd_take(int fd);
void eventfd_add(int fd, std::uint64_t count);
void eventfd_drain(int fd);

/// A copy of `fd` at a number >= 3, close-on-exec; `fd` stays open. -1 with errno set on failure.
int copy_above_stdio(int fd) noexcept;
/// Moves `fd` to a number >= 3 (stdio numbers are reserved for the launch), keeping O_CLOEXEC.
/// Returns the new descriptor (the old one is closed) or -1 with errno set.
int move_above_stdio(int fd) noexcept;

}  // namespace herd::detail
