// Descriptor tools for fault-injection tests: find a channel's socket, use up every descriptor.
#pragma once

#include <vector>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace herd_test {

/// The lowest-numbered SEQPACKET socket this process holds: with one queue or pipe made, its
/// first end, into which a test can write raw packets. -1 if none.
inline int first_seqpacket_socket(int from = 3) {
  for (int fd = from; fd < 1024; ++fd) {
    int type = 0;
    socklen_t length = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && type == SOCK_SEQPACKET) return fd;
  }
  return -1;
}

/// The lowest descriptor number not open: what the next one made will get (sockets made before,
/// the forkserver's among them, lie below it).
inline int lowest_free_fd() {
  int fd = 3;
  while (::fcntl(fd, F_GETFD) >= 0) ++fd;
  return fd;
}

/// While it lives, no descriptor is free: the limit sits at the highest open one and every gap
/// below it is filled. Gives everything back when destroyed.
class no_descriptor_free {
 public:
  no_descriptor_free() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    int highest = 0;
    for (int fd = 0; fd < 4096; ++fd)
      if (::fcntl(fd, F_GETFD) >= 0) highest = fd;
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(highest + 1);
    ::setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers_.push_back(fd);
  }
  ~no_descriptor_free() {
    for (int fd : fillers_) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  no_descriptor_free(const no_descriptor_free&) = delete;
  no_descriptor_free& operator=(const no_descriptor_free&) = delete;

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

}  // namespace herd_test
