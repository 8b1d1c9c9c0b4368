// The launched child between clone() and execve(). It shares the parent's memory, runs on a
// borrowed stack and may run while other parent threads hold locks, so it makes raw system
// calls only: no libc wrappers that an interceptor (sanitizers) or a lock could hide behind.
// This file is compiled without sanitizer instrumentation (CMakeLists.txt).
#include "launcher.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace herd::detail {
namespace {

// The kernel's sigaction for SIG_DFL with no flags and an empty mask is all zeros on every
// architecture, whatever the field order.
struct zero_kernel_sigaction {
  unsigned long words[4] = {0, 0, 0, 0};
};

int fail(launch_shared* shared, const char* step) noexcept {
  shared->error = errno;
  shared->failed_step = step;
  return 127;
}

}  // namespace

int launch_child_main(void* argument) noexcept {
  auto* shared = static_cast<launch_shared*>(argument);
  const launch_request& request = *shared->request;

  // Every disposition back to default: handlers belong to the parent (and must not run in its
  // memory), and ignored signals such as SIGPIPE would be inherited across execve.
  const zero_kernel_sigaction default_action;
  for (long signo = 1; signo < 65; ++signo)
    if (signo != SIGKILL && signo != SIGSTOP)
      syscall(SYS_rt_sigaction, signo, &default_action, nullptr, 8L);

  if (syscall(SYS_setpgid, 0L, static_cast<long>(request.process_group)) != 0)
    return fail(shared, "setpgid");

  if (request.die_with_parent) {
    if (syscall(SYS_prctl, static_cast<long>(PR_SET_PDEATHSIG), static_cast<long>(SIGKILL), 0L, 0L, 0L) != 0)
      return fail(shared, "prctl(PR_SET_PDEATHSIG)");
    // The parent may have died before the flag was set.
    if (syscall(SYS_getppid) != shared->parent) {
      errno = ESRCH;
      return fail(shared, "getppid");
    }
  }

  for (long target = 0; target < 3; ++target) {
    long source = request.stdio[target];
    if (source == launch_request::same_as_stdout) source = 1;
    if (source < 0) continue;
    if (source == target) {
      // Keep our own descriptor across execve.
      if (syscall(SYS_fcntl, source, static_cast<long>(F_SETFD), 0L) != 0) return fail(shared, "fcntl");
    } else if (syscall(SYS_dup3, source, target, 0L) < 0) {
      return fail(shared, "dup2");
    }
  }

  // No descriptor but stdio crosses execve, whether or not its owner set O_CLOEXEC.
  if (syscall(SYS_close_range, 3L, static_cast<long>(~0U), static_cast<long>(CLOSE_RANGE_CLOEXEC)) != 0) {
    struct {
      unsigned long soft, hard;
    } limit{1024, 1024};
    syscall(SYS_prlimit64, 0L, static_cast<long>(RLIMIT_NOFILE), nullptr, &limit);
    const long last = limit.soft < (1UL << 20) ? static_cast<long>(limit.soft) : (1L << 20);
    for (long fd = 3; fd < last; ++fd) syscall(SYS_fcntl, fd, static_cast<long>(F_SETFD), static_cast<long>(FD_CLOEXEC));
  }

  if (request.working_directory != nullptr && syscall(SYS_chdir, request.working_directory) != 0)
    return fail(shared, "chdir");

  const unsigned long empty_mask = 0;
  syscall(SYS_rt_sigprocmask, static_cast<long>(SIG_SETMASK), &empty_mask, nullptr, 8L);

  syscall(SYS_execve, request.path, request.argv, request.envp);
  return fail(shared, "execve");
}

}  // namespace herd::detail
