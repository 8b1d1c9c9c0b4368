// Small helpers shared by herd's compiled operations.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <utility>

namespace herd::detail {

/// Completes `handler` through `io_executor` (never inline in the initiating call), on the
/// handler's own associated executor.
template <typename Handler, typename... Args>
void post_completion(const asio::any_io_executor& io_executor, Handler&& handler, Args&&... args) {
  asio::post(io_executor, asio::append(std::forward<Handler>(handler), std::forward<Args>(args)...));
}

/// write() that never raises SIGPIPE in the process: a write to a pipe whose reader is gone
/// fails with EPIPE instead (the SIGPIPE it generates is blocked and consumed on this thread).
long write_without_sigpipe(int fd, const void* data, std::size_t size) noexcept;

/// pidfd system calls by number: glibc 2.36's <sys/pidfd.h> lacks extern "C" (fixed in 2.37).
int open_pidfd(int pid) noexcept;
int send_signal_by_pidfd(int pidfd, int signo) noexcept;
/// The wait status of a process that someone else reaped, kept by the kernel for holders of its
/// pidfd (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15). False if the kernel cannot tell.
bool exit_status_from_pidfd(int pidfd, int& wait_status) noexcept;

/// Moves `fd` to a number >= 3 (stdio numbers are reserved for the launch), keeping O_CLOEXEC.
/// Returns the new descriptor (the old one is closed) or -1 with errno set.
int move_above_stdio(int fd) noexcept;

}  // namespace herd::detail
