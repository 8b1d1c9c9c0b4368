// The child's side of fork_process: from right after fork() to _exit. It runs in a copy of the
// parent's memory, on the stack frame of fork_process that never unwinds there.
#pragma once

#include <herd/process.hpp>

#include <string>
#include <sys/types.h>

namespace herd::detail {

/// Flushes the C and C++ standard streams (never throws): before a fork in the parent, or its
/// buffered text would be printed again by the child (fork trap 1), and at the child's exit.
void flush_stdio() noexcept;

/// The exception being handled: its type, demangled, and its what() (or a note if it is not a
/// std::exception). Call it in a catch block.
struct exception_description {
  std::string type;
  std::string message;
};
exception_description describe_current_exception();

/// The exception being handled, as an outcome's exception record (its type and what()); empty if
/// even that could not be allocated. Call it in a catch block.
std::string current_exception_record() noexcept;

/// Every signal disposition back to its default and an empty mask: a child never runs a
/// handler the parent (or the program's own start, such as a sanitizer's) installed.
void reset_signals_in_child() noexcept;

/// In a fork child made under the fork lock (released by the caller): closes the parent's fork
/// exclusions, resets signals (fork trap 2), joins its own process group, applies `options`,
/// runs `body`, sends its outcome on `channel` and leaves with _exit. `name` lives in
/// fork_process's frame, which never unwinds in the child.
[[noreturn]] void run_child(const process_options& options, const std::string& name, pid_t parent, int channel,
                            child_body body) noexcept;

/// The end of every child, forked or spawned: runs `body`, sends its outcome (its value, or the
/// exception it threw) on `channel`, runs the exit hooks and leaves with _exit.
[[noreturn]] void finish_child(int channel, child_body body) noexcept;

}  // namespace herd::detail
