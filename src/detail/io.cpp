#include "io.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace herd::detail {

long write_without_sigpipe(int fd, const void* data, std::size_t size) noexcept {
  sigset_t pipe_signal, previous;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, &previous);
  long written = ::write(fd, data, size);
  const int write_error = errno;
  if (written < 0 && write_error == EPIPE) {
    const timespec no_wait{0, 0};
    while (sigtimedwait(&pipe_signal, nullptr, &no_wait) < 0 && errno == EINTR) {}
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  errno = write_error;
  return written;
}

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

int move_above_stdio(int fd) noexcept {
  if (fd < 0 || fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return moved;
}

}  // namespace herd::detail
