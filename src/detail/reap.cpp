#include "reap.hpp"

#include "group_watchdog.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// waitid() on a pidfd: Linux 5.4; glibc 2.36 headers do not name it.
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace herd::detail {

int open_pidfd(int pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int send_signal_by_pidfd(int pidfd, int signo) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0));
}

namespace {

// <linux/pidfd.h> of Linux 6.15; Debian 12's headers predate it. The kernel accepts this first
// published size (PIDFD_INFO_SIZE_VER0) from newer and older callers alike.
struct pidfd_info_v0 {
  std::uint64_t mask;
  std::uint64_t cgroupid;
  std::uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  std::int32_t exit_code;
};
static_assert(sizeof(pidfd_info_v0) == 64);
constexpr std::uint64_t pidfd_info_exit = 1u << 3;
constexpr unsigned long pidfd_get_info = _IOWR(0xFF, 11, pidfd_info_v0);

}  // namespace

bool exit_status_from_pidfd(int pidfd, int& wait_status) noexcept {
  pidfd_info_v0 info{};
  info.mask = pidfd_info_exit;
  if (::ioctl(pidfd, pidfd_get_info, &info) != 0 || (info.mask & pidfd_info_exit) == 0) return false;
  wait_status = info.exit_code;
  return true;
}

std::optional<exit_status> reap(int pid, int pidfd, bool block, bool keep_descendants, exit_reason reason) noexcept {
  if (block) {
    // Asio makes pidfds non-blocking, and waitid(P_PIDFD) honours that.
    const int flags = ::fcntl(pidfd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK) != 0) ::fcntl(pidfd, F_SETFL, flags & ~O_NONBLOCK);
  }
  siginfo_t info{};
  const int peek = WEXITED | WNOWAIT | __WALL | (block ? 0 : WNOHANG);
  int result;
  while ((result = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, peek)) != 0 &&
         errno == EINTR) {
  }
  if (result != 0) {
    // Someone else reaped it: SIGCHLD set to SIG_IGN (the kernel auto-reaps), or a waitpid(-1)
    // elsewhere. Its group may be gone and its pid reused, so no group kill now.
    forget_group(pid);
    int wait_status = 0;
    if (!exit_status_from_pidfd(pidfd, wait_status)) return exit_status::exited(255, reason);
    if (WIFSIGNALED(wait_status)) return exit_status::signaled(WTERMSIG(wait_status), WCOREDUMP(wait_status), reason);
    return exit_status::exited(WEXITSTATUS(wait_status), reason);
  }
  if (info.si_pid == 0) return std::nullopt;
  if (!keep_descendants) ::kill(-pid, SIGKILL);
  forget_group(pid);  // while the zombie still holds the number
  siginfo_t ignored{};
  ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &ignored, WEXITED | WNOHANG | __WALL);
  return exit_status::from_siginfo(info.si_code, info.si_status, reason);
}

void reap_discarding_status(int pidfd) noexcept {
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | __WALL) < 0 &&
         errno == EINTR) {
  }
}

void signal_group(int pid, int pidfd, int signo) noexcept {
  if (::getpgid(pid) != pid) send_signal_by_pidfd(pidfd, signo);
  ::kill(-pid, signo);
}

exit_status stop_and_reap(int pid, int pidfd, const stop_policy& policy, exit_reason reason) noexcept {
  if (auto ended = reap(pid, pidfd, false, false, exit_reason::normal)) return *ended;
  signal_group(pid, pidfd, policy.signal);
  if (policy.signal != SIGKILL) {
    pollfd readable{pidfd, POLLIN, 0};
    const auto grace = static_cast<int>(policy.grace.count());
    while (::poll(&readable, 1, grace) < 0 && errno == EINTR) {
    }
    if (auto ended = reap(pid, pidfd, false, false, reason)) return *ended;
    signal_group(pid, pidfd, SIGKILL);
  }
  return *reap(pid, pidfd, true, false, reason);
}

bool process_gone(int pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  char text[512];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* close = std::strrchr(text, ')');  // the name may hold anything but this last one
  return close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

}  // namespace herd::detail
