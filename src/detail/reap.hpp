// Watching, signalling and reaping a child through its pidfd, with plain system calls (no event
// loop): the one place herd reaps.
#pragma once

#include <herd/exit_status.hpp>
#include <herd/stop_policy.hpp>

#include <optional>

namespace herd::detail {

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

/// Blocks until the child behind `pidfd` has ended and reaps it, discarding its status: for a
/// child nobody watches yet or any more (a failed launch, the watchdog's outer shell). Its group
/// is left alone and it is not registered with the watchdog.
void reap_discarding_status(int pidfd) noexcept;

/// Stops a child without an event loop — `signal` to its group, up to `grace`, then SIGKILL —
/// and reaps it. For the parent's exit, when executors may be gone.
exit_status stop_and_reap(int pid, int pidfd, const stop_policy& policy, exit_reason reason) noexcept;

/// Signals a child once: its group while it still leads it, else it by pidfd and its old group.
void signal_group(int pid, int pidfd, int signo) noexcept;

/// True if no live process has this pid: none exists, or it is a zombie (dead, not yet reaped,
/// which still answers kill()). For holders of shared state (locks, slab slots) that may have
/// died with it. A reused pid looks alive.
bool process_gone(int pid) noexcept;

}  // namespace herd::detail
