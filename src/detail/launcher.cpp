#include "launcher.hpp"

#include "reap.hpp"

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

// glibc's own name for clone(). ThreadSanitizer intercepts clone() and treats it as fork(),
// rewriting its state in the child, which here shares the parent's memory; __clone is not
// intercepted.
extern "C" int __clone(int (*fn)(void*), void* stack, int flags, void* arg, ...);

namespace herd::detail {
namespace {

// The child only runs a few raw system calls before execve.
constexpr std::size_t child_stack_size = 32 * 1024;

}  // namespace

launch_result launch(const launch_request& request) noexcept {
  launch_shared shared{&request, ::getpid(), 0, nullptr};
  alignas(64) std::byte stack[child_stack_size];

  // With CLONE_VM a signal handler running in the child would run on the parent's memory:
  // block everything until the child has reset its dispositions (it unblocks before execve).
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);

  int pidfd = -1;
  const int saved_errno = errno;
  // SIGCHLD as the exit signal: execve resets any other back to SIGCHLD anyway. A status taken
  // by someone else (SIGCHLD ignored, a waitpid(-1)) is recovered from the pidfd (reap, detail/reap.cpp).
  pid_t pid = __clone(launch_child_main, stack + child_stack_size, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD,
                      &shared, &pidfd);
  int clone_error = errno;
  if (pid < 0 && clone_error == EINVAL) {
    // Kernels before 5.2 have no CLONE_PIDFD: take the pidfd afterwards (we are the only reaper).
    pid = __clone(launch_child_main, stack + child_stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &shared);
    clone_error = errno;
    if (pid > 0) {
      pidfd = open_pidfd(pid);
      if (pidfd < 0) clone_error = errno;
    }
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  errno = saved_errno;

  launch_result result;
  if (pid < 0) {
    result.error = clone_error;
    result.failed_step = "clone";
    return result;
  }
  if (pidfd < 0) {
    // No way to wait without a pidfd: stop the child and reap it by pid.
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
    result.error = clone_error;
    result.failed_step = "pidfd_open";
    return result;
  }
  if (shared.error != 0) {
    // The child failed before execve and has exited: reap it.
    reap_discarding_status(pidfd);
    ::close(pidfd);
    result.error = shared.error;
    result.failed_step = shared.failed_step;
    return result;
  }
  result.pid = pid;
  result.pidfd = pidfd;
  return result;
}

}  // namespace herd::detail
