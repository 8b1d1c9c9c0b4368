// The function children this process started, for what outlives their handles: reaping detached
// children, Python's exit behaviour (daemons stopped, the others joined) and active_children().
#pragma once

#include <memory>

namespace herd::detail {

struct function_process;

/// Registers a child just prepared by fork_process (before the fork: every page the parent
/// writes after it is copied). The first call installs the atexit handler that finishes the
/// children still running. Also reaps detached children that have ended.
void remember(const std::shared_ptr<function_process>& child);

/// Keeps a detached child's pid and `pidfd` (owned from now on), so that it is reaped, and at
/// exit stopped (a daemon) or joined. Without memory the pidfd is closed and the child stays a
/// zombie until this process ends.
void remember_detached(const function_process& child, int pidfd) noexcept;

}  // namespace herd::detail
