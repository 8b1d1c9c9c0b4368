#include "io.hpp"

#include "group_watchdog.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

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

namespace {
// Alone on its page: the parent writes it only to take and drop the lock around fork.
alignas(4096) fork_page the_fork_page;
void refresh_cached_pid() noexcept {
  the_fork_page.pid.store(static_cast<int>(::syscall(SYS_getpid)), std::memory_order_relaxed);
}
}  // namespace

fork_page& fork_state() noexcept { return the_fork_page; }

int current_pid() noexcept {
  // Registered on first use; a fork before that leaves nothing stale to refresh.
  static const bool registered = (refresh_cached_pid(), ::pthread_atfork(nullptr, nullptr, refresh_cached_pid), true);
  (void)registered;
  return the_fork_page.pid.load(std::memory_order_relaxed);
}

namespace {
// Never destroyed: destructors of static objects may still close pipes at exit. A forked child
// finds the list stale by its owner's pid and starts afresh, without writing to it at fork
// time (every page a fresh child writes costs a copy).
struct exclusion_list {
  pid_t owner = 0;
  std::vector<int> fds;
};

exclusion_list& exclusion_state() {
  static auto* list = new exclusion_list;
  return *list;
}

std::vector<int>& exclusions() {
  auto& list = exclusion_state();
  if (list.owner != current_pid()) {
    list.fds.clear();
    list.owner = current_pid();
  }
  return list.fds;
}
}  // namespace

std::mutex& fork_lock() noexcept {
  // The exclusion list is created with it, in the parent: a child's first use would allocate.
  static const bool list_made = (exclusion_state(), true);
  (void)list_made;
  return the_fork_page.lock;
}

namespace {
thread_local int fork_guard_depth = 0;
}  // namespace

fork_guard::fork_guard() : outermost_(fork_guard_depth == 0) {
  if (outermost_) fork_lock().lock();
  ++fork_guard_depth;
}

fork_guard::~fork_guard() {
  if (fork_guard_depth == 0) return;  // released in a fork child
  --fork_guard_depth;
  if (outermost_) fork_lock().unlock();
}

void fork_guard::release_in_child() noexcept {
  fork_guard_depth = 0;
  fork_lock().unlock();
}

bool fork_guard::held_by_this_thread() noexcept { return fork_guard_depth > 0; }

void exclude_from_forks(int fd) noexcept {
  fork_guard guard;
  try {
    exclusions().push_back(fd);
  } catch (...) {
    // Out of memory: the descriptor stays inheritable, which only delays an end of file.
  }
}

void include_in_forks(int fd) noexcept {
  fork_guard guard;
  auto& fds = exclusions();
  for (auto it = fds.begin(); it != fds.end(); ++it)
    if (*it == fd) {
      fds.erase(it);
      return;
    }
}

void close_excluded(int fd) noexcept {
  if (fd < 0) return;
  fork_guard guard;  // no fork between the two: it would keep a copy
  include_in_forks(fd);
  ::close(fd);
}

void close_fork_exclusions_in_child() noexcept {
  for (int fd : exclusion_state().fds) ::close(fd);  // the parent's list; read only
}

void attach_descriptor(msghdr& message, char* control, std::size_t control_size, int fd) noexcept {
  message.msg_control = control;
  message.msg_controllen = control_size;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
}

std::vector<unique_fd> received_descriptors(msghdr& message) {
  std::vector<unique_fd> descriptors;
  for (cmsghdr* h = CMSG_FIRSTHDR(&message); h != nullptr; h = CMSG_NXTHDR(&message, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
      descriptors.emplace_back(fd);
    }
  }
  return descriptors;
}

std::optional<std::size_t> file_size(int fd) noexcept {
  struct stat info{};
  if (::fstat(fd, &info) != 0) return std::nullopt;
  return static_cast<std::size_t>(info.st_size);
}

bool read_whole(int fd, char* out, std::size_t length) noexcept {
  for (std::size_t done = 0; done < length;) {
    const ssize_t n = ::pread(fd, out + done, length - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
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

namespace {
std::string shown(const std::string& text) {
  std::string out = "\"";
  for (char c : text) out += c == '\0' ? std::string("\\0") : std::string(1, c);
  return out + "\"";
}
}  // namespace

std::string bad_environment_name(const std::string& name) {
  if (name.empty()) return "an environment variable's name is empty";
  if (name.find('=') != std::string::npos) return "the environment variable name " + shown(name) + " contains '='";
  if (name.find('\0') != std::string::npos)
    return "the environment variable name " + shown(name) + " contains a NUL byte";
  return {};
}

std::string bad_c_string(const std::string& text, const std::string& what) {
  if (text.find('\0') == std::string::npos) return {};
  return what + " " + shown(text) + " contains a NUL byte";
}

int move_above_stdio(int fd) noexcept {
  if (fd < 0 || fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return moved;
}

int poll_timeout_until(std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
  if (!deadline) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<long long>(left.count(), 1 << 30));
}

}  // namespace herd::detail
