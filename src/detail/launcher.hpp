// herd's program launcher (docs/design/decisions.md, "The launcher"): clone(CLONE_VM |
// CLONE_VFORK | CLONE_PIDFD), so its cost does not grow with the parent's memory, and a child
// that does only async-signal-safe system calls before execve.
#pragma once

#include <sys/types.h>

namespace herd::detail {

struct launch_request {
  /// Marks stderr as "wherever stdout went" (2>&1).
  static constexpr int same_as_stdout = -2;

  const char* path = nullptr;          // resolved executable
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* working_directory = nullptr;  // nullptr: the parent's
  /// Descriptors that become the child's 0, 1 and 2; -1 inherits. The parent guarantees that
  /// each is either the target itself or >= 3, so no dup2 clobbers a later source.
  int stdio[3] = {-1, -1, -1};
  /// 0: the child leads a new process group; otherwise the group to join.
  pid_t process_group = 0;
  bool die_with_parent = true;
};

struct launch_result {
  pid_t pid = -1;
  int pidfd = -1;         // owned by the caller; O_CLOEXEC
  int error = 0;          // errno of the failed step, 0 on success
  const char* failed_step = nullptr;  // "clone", "setpgid", "dup2", "chdir", "execve", …
};

/// Starts the program. On failure nothing is left behind (the failed child is reaped).
launch_result launch(const launch_request& request) noexcept;

// Shared between the parent and the launched child (which runs in the parent's memory until
// execve); written by the child only.
struct launch_shared {
  const launch_request* request;
  pid_t parent;
  int error;
  const char* failed_step;
};

// The child's entry point, in launcher_child.cpp (compiled without sanitizers).
int launch_child_main(void* shared) noexcept;

}  // namespace herd::detail
