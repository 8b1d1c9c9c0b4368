#include "channel_transport.hpp"

#include <herd/error.hpp>

#include "framing.hpp"
#include "descriptors.hpp"

#include <cerrno>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <linux/sockios.h>

namespace herd::detail {


std::array<unique_fd, 2> make_socketpair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    throw boost::system::system_error(system_code(errno), "herd: socketpair");
  return {unique_fd(move_above_stdio(fds[0])), unique_fd(move_above_stdio(fds[1]))};
}


error_code send_packet(int fd, std::string_view packet, int descriptor, bool block, deadline deadline) {
  iovec data{const_cast<char*>(packet.data()), packet.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  if (descriptor >= 0) attach_descriptor(message, control, sizeof control, descriptor);
  for (;;) {
    // Without a deadline a blocking send sleeps in the kernel; with one it polls.
    const int flags = MSG_NOSIGNAL | ((block && !deadline) ? 0 : MSG_DONTWAIT);
    if (::sendmsg(fd, &message, flags) >= 0) return {};
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EPIPE || error == ECONNRESET) return errc::closed;
    if (error == EMSGSIZE) return errc::message_too_large;
    if (error == ETOOMANYREFS || error == ENOBUFS) {
      // Too many descriptors in flight (per user), or no memory: epoll would still say
      // writable, so waiting for readiness cannot help. Back off and retry.
      if (!block) return errc::would_block;
      if (deadline_passed(deadline, deadline_clock::now())) return errc::timed_out;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (error != EAGAIN) return system_code(error);
    if (!block) return errc::would_block;
    if (!wait_ready(fd, POLLOUT, deadline)) return errc::timed_out;
  }
}

error_code receive_packet(int fd, std::vector<char>& buffer, bool block, received_packet& out) {
  if (buffer.size() < max_packet) buffer.resize(max_packet);
  int flags = 0;
  const ssize_t n = receive_with_descriptors(fd, buffer, block ? 0 : MSG_DONTWAIT, max_descriptors_per_packet,
                                             out.descriptors, flags);
  if (n < 0) {
    if (errno == EAGAIN) return errc::would_block;
    if (errno == ECONNRESET) return errc::closed;
    return system_code(errno);
  }
  // End of file, or a zero-length packet written raw into the socket (every packet herd sends
  // holds a record): only the end of file comes with a hang-up.
  if (n == 0 && out.descriptors.empty()) return hung_up(fd) ? errc::closed : errc::bad_message;
  if ((flags & MSG_TRUNC) != 0) return errc::bad_message;
  out.size = static_cast<std::size_t>(n);
  out.descriptors_dropped = (flags & MSG_CTRUNC) != 0;
  return {};
}

bool wait_ready(int fd, short events, deadline deadline) {
  for (;;) {
    const int wait_ms = poll_timeout_until(deadline);
    if (wait_ms == 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, wait_ms);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the caller's I/O report the problem
  }
}

bool hung_up(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

bool shut_down_for_sending(int fd) {
  // Look without sending.
  pollfd p{fd, POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

std::size_t bytes_waiting_to_send(int fd) {
  int queued = 0;
  return ::ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 ? static_cast<std::size_t>(queued) : 0;
}

bool nothing_to_receive(int fd) {
  int waiting = 0;
  return ::ioctl(fd, SIOCINQ, &waiting) == 0 && waiting == 0;
}

watcher::watcher(const asio::any_io_executor& ex, int watched, std::uint32_t events) : stream(ex) {
  unique_fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) throw boost::system::system_error(system_code(errno), "herd: epoll_create1");
  epoll_event event{};
  event.events = events;  // level-triggered: readiness stays until the condition is gone
  event.data.fd = watched;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, watched, &event) != 0)
    throw boost::system::system_error(system_code(errno), "herd: epoll_ctl");
  stream.assign(epoll.get());
  epoll.release();
}

void waiters::abandon(waiters* inherited) noexcept {
  for (auto* w : {&inherited->receive, &inherited->send, &inherited->token, &inherited->done})
    if (*w) ::close((*w)->stream.native_handle());
}

}  // namespace herd::detail
