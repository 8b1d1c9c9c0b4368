// Small helpers shared by herd's compiled operations.
#pragma once

#include <herd/config.hpp>
#include <herd/exit_status.hpp>
#include <herd/stop_policy.hpp>

#include "unique_fd.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/socket.h>
#include <sys/wait.h>

// waitid() on a pidfd: Linux 5.4; glibc 2.36 headers do not name it.
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace herd::detail {

/// Completes `handler` through `io_executor` with `post` (never inline in the initiating call),
/// on the handler's own associated executor.
template <typename Handler, typename... Args>
void post_completion(const asio::any_io_executor& io_executor, Handler&& handler, Args&&... args) {
  asio::post(io_executor, asio::append(std::forward<Handler>(handler), std::forward<Args>(args)...));
}

/// What a fork child writes first, together on one page: each page a fresh child writes costs
/// a copy (three pages were three faults, ~2 µs each here).
struct fork_page {
  std::atomic<int> pid{0};           // current_pid()
  std::mutex lock;                   // fork_lock()
  const std::string* process_name = nullptr;  // this_process::name(); null in the main process
  bool daemon = false;
};
fork_page& fork_state() noexcept;

/// This process's pid without a system call (glibc no longer caches getpid()): kept current
/// by a pthread_atfork child handler, so it is right after every fork() — herd's and the
/// user's. Channels and registries ask it on every operation to tell a forked copy of their
/// state from their own.
int current_pid() noexcept;

/// write() that never raises SIGPIPE in the process: a write to a pipe whose reader is gone
/// fails with EPIPE instead (the SIGPIPE it generates is blocked and consumed on this thread).
long write_without_sigpipe(int fd, const void* data, std::size_t size) noexcept;

/// A poll() timeout that reaches `deadline`: rounded up (a truncated one wakes early), 0 once
/// it has passed, -1 (forever) without a deadline.
int poll_timeout_until(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept;

/// pidfd system calls by number: glibc 2.36's <sys/pidfd.h> lacks extern "C" (fixed in 2.37).
int open_pidfd(int pid) noexcept;
int send_signal_by_pidfd(int pidfd, int signo) noexcept;
/// The wait status of a process that someone else reaped, kept by the kernel for holders of its
/// pidfd (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15). False if the kernel cannot tell.
bool exit_status_from_pidfd(int pidfd, int& wait_status) noexcept;

/// Reaps the child `pid` behind `pidfd` if it has ended — or, with `block`, once it ends — and
/// returns its status; empty if it still runs. While the ended child is an unreaped zombie its
/// pid (so its process group id) cannot be reused, so what it left in its group is killed then,
/// unless `keep_descendants`. A status someone else took is recovered from the pidfd where the
/// kernel keeps it (Linux 6.15+), else reported as exited(255). The one place herd reaps.
std::optional<exit_status> reap(int pid, int pidfd, bool block, bool keep_descendants, exit_reason reason) noexcept;

/// Stops a child without an event loop — `signal` to its group, up to `grace`, then SIGKILL —
/// and reaps it. For the parent's exit, when executors may be gone.
exit_status stop_and_reap(int pid, int pidfd, const stop_policy& policy, exit_reason reason) noexcept;

/// Signals a child once: its group while it still leads it, else it by pidfd and its old group.
void signal_group(int pid, int pidfd, int signo) noexcept;

/// Descriptors a forked function child must not keep: the parent's ends of other children's
/// stdio pipes, pidfds and outcome sockets (a fork child holding a stdin pipe's write end would
/// keep that program from ever reading end of file). Each is registered while herd's fork lock
/// is held from its creation on (a fork_guard), so no fork sees it unregistered, and taken out
/// of the list as it is closed, both under the lock, so that no fork keeps a copy and a later
/// descriptor with its number is never closed.
void exclude_from_forks(int fd) noexcept;
void include_in_forks(int fd) noexcept;
/// include_in_forks, then close, under the fork lock (a fork in between would keep a copy).
void close_excluded(int fd) noexcept;
/// In a fork child: closes every excluded descriptor and forgets them.
void close_fork_exclusions_in_child() noexcept;
/// Held across fork() so that no herd registry is half-updated in the child.
std::mutex& fork_lock() noexcept;

/// Holds herd's fork lock on this thread; re-entrant on one thread (a pipeline's start holds it
/// while each stage's launch takes it again). Every descriptor a launch or fork makes for a child
/// is created, handed out or closed under it, so that no fork on another thread copies one.
class fork_guard {
 public:
  fork_guard();
  ~fork_guard();
  fork_guard(const fork_guard&) = delete;
  fork_guard& operator=(const fork_guard&) = delete;
  /// In the child of a fork made under this guard: lets go of the child's copy of the lock.
  void release_in_child() noexcept;
  static bool held_by_this_thread() noexcept;

 private:
  bool outermost_;
};

/// Adds `fd` to `message` as SCM_RIGHTS ancillary data, written into `control`, which holds at
/// least CMSG_SPACE(sizeof(int)) bytes aligned for cmsghdr. Plain memory writes: fork-child safe.
void attach_descriptor(msghdr& message, char* control, std::size_t control_size, int fd) noexcept;
/// Takes ownership of the descriptors a received message carried (SCM_RIGHTS).
std::vector<unique_fd> received_descriptors(msghdr& message);
/// The size of the file (a memfd) behind `fd`, if fstat can tell.
std::optional<std::size_t> file_size(int fd) noexcept;
/// Reads `length` bytes from offset 0 of `fd` (a memfd) into `out`; false if it holds fewer.
bool read_whole(int fd, char* out, std::size_t length) noexcept;

/// True if no live process has this pid: none exists, or it is a zombie (dead, not yet reaped,
/// which still answers kill()). For holders of shared state (locks, slab slots) that may have
/// died with it. A reused pid looks alive.
bool process_gone(int pid) noexcept;

/// Empty, or what is wrong with an environment variable's name: empty, or holding '=' or a NUL
/// byte (execve would read "A=B=x" as A set to "B=x", and a NUL ends the string early).
std::string bad_environment_name(const std::string& name);
/// Empty, or what is wrong with `text` (an argument, a value) that execve takes as a C string:
/// a NUL byte, which would cut it short. `what` names it ("argument 2").
std::string bad_c_string(const std::string& text, const std::string& what);

/// Moves `fd` to a number >= 3 (stdio numbers are reserved for the launch), keeping O_CLOEXEC.
/// Returns the new descriptor (the old one is closed) or -1 with errno set.
int move_above_stdio(int fd) noexcept;

}  // namespace herd::detail
