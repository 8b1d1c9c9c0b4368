// Moments of a process's life at which other components must act, without the code that reaches
// those moments knowing them: before herd waits for a child, before it forks, as a function
// child exits. Channels register here once they have packed a batch (it must leave before any
// of these); later components (pools, supervisors) register their own.
#pragma once

namespace herd::detail {

enum class process_moment { before_wait, before_fork, child_exit };

using process_hook = void (*)() noexcept;

/// Registers `hook` for `moment` (at most 8 per moment; more is a programming error). Hooks run
/// in the order they were added; a hook added twice runs once.
void add_process_hook(process_moment moment, process_hook hook) noexcept;

/// Runs the hooks of `moment`: no lock, no allocation, so it is safe right before fork and in a
/// fork child.
void run_process_hooks(process_moment moment) noexcept;

}  // namespace herd::detail
