#include "descriptors.hpp"

#include "system_code.hpp"

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace herd::detail {

unique_fd make_eventfd(unsigned initial, int flags) {
  unique_fd fd(::eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK | flags));
  if (!fd) throw boost::system::system_error(system_code(errno), "herd: eventfd");
  return fd;
}

bool eventfd_take(int fd) {
  std::uint64_t value;
  for (;;) {
    if (::read(fd, &value, sizeof value) == sizeof value) return true;
    if (errno != EINTR) return false;
  }
}

void eventfd_add(int fd, std::uint64_t count) {
  while (::write(fd, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

void eventfd_drain(int fd) {
  std::uint64_t drained;
  while (::read(fd, &drained, sizeof drained) < 0 && errno == EINTR) {
  }
}

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

void attach_descriptor(msghdr& message, char* control, std::size_t control_size, int fd) noexcept {
  attach_descriptors(message, control, control_size, std::span<const int>(&fd, 1));
}

void attach_descriptors(msghdr& message, char* control, std::size_t control_size, std::span<const int> fds) noexcept {
  message.msg_control = control;
  message.msg_controllen = control_size;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
}

ssize_t receive_with_descriptors(int fd, std::span<char> data, int flags, std::size_t max_descriptors,
                                 std::vector<unique_fd>& descriptors, int& message_flags) {
  iovec part{data.data(), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_received_descriptors)];
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = CMSG_SPACE(sizeof(int) * std::min(max_descriptors, max_received_descriptors));
  ssize_t n;
  while ((n = ::recvmsg(fd, &message, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  message_flags = message.msg_flags;
  if (n >= 0) descriptors = received_descriptors(message);
  return n;
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

int copy_above_stdio(int fd) noexcept { return ::fcntl(fd, F_DUPFD_CLOEXEC, 3); }

int move_above_stdio(int fd) noexcept {
  if (fd < 0 || fd > 2) return fd;
  const int moved = copy_above_stdio(fd);
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
