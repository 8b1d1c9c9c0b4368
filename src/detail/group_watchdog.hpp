// The watchdog that kills herd's process groups when this process dies without running any code
// (SIGKILL, a crash): PR_SET_PDEATHSIG reaches only direct children, and a program's background
// grandchildren would live on (docs/design/decisions.md, "Groups outlive a killed parent").
#pragma once

namespace herd::detail {

/// Registers the process group `pgid` (a child herd started, which leads it) with this process's
/// watchdog, started on first use: a small /bin/sh loop, orphaned from this process, that sleeps
/// on a pipe and, at its end of file (this process gone, however), SIGKILLs every group still in
/// the table of pgids this process keeps in a shared memfd. Call under a fork_guard (the pipe and
/// the memfd are fork exclusions from their creation). Without /bin/sh or a free descriptor
/// nothing is watched, and it tries again on the next start.
void watch_group(int pgid) noexcept;

/// Takes `pgid` out of the watch: called before its leader is reaped, while the zombie leader
/// still holds the number (so the watchdog never kills a later group that reuses it).
void forget_group(int pgid) noexcept;

}  // namespace herd::detail
