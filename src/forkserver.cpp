// The forkserver start method: a small server, this program spawned once (single-threaded, its
// memory the program's own), that forks each new process on request with CLONE_PARENT, so the
// new process is the application's child (pidfd, reaping, stop policy as for any other). The
// application sends the new process's role and descriptors over a SOCK_SEQPACKET socket
// (SCM_RIGHTS) and reads back its pid.
#include "detail/code_ref.hpp"
#include "detail/descriptors.hpp"
#include "detail/fork_lock.hpp"
#include "detail/group_watchdog.hpp"
#include "detail/spawn_process.hpp"
#include "detail/unique_fd.hpp"

#include <herd/error.hpp>

#include <boost/system/system_error.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace herd::detail {
namespace {

constexpr std::size_t max_descriptors = 8;
constexpr std::size_t max_role = 4096;
// The forkserver answers within a fork's time; one that does not in this long is wedged.
constexpr int answer_timeout_ms = 5000;

struct forkserver_client {
  std::mutex mutex;
  int owner = 0;  // the process that started the server: its children are that process's
  int pid = 0;
  unique_fd socket;  // a fork exclusion
};
// The client, locked; in a copy of the process made by a plain fork(), the server it inherited
// is forgotten (its children would be the original process's): this process starts its own.
struct locked_client {
  forkserver_client& c;
  std::lock_guard<std::mutex> lock;
  locked_client(forkserver_client& client) : c(client), lock(client.mutex) {
    if (c.owner != current_pid()) {
      // Not closed: a fork by herd has closed it already (a fork exclusion), and its number may
      // be another descriptor's now; after a plain fork() the copy stays open, unused.
      (void)c.socket.release();
      c.pid = 0;
      c.owner = current_pid();
    }
  }
};
locked_client client() {
  static auto* c = new forkserver_client;  // never destroyed: used until the process ends
  return locked_client(*c);
}

// Starts the server; the caller holds the client's mutex and the fork lock.
void start_server(forkserver_client& c) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0)
    throw boost::system::system_error(errc::spawn_failed, std::string("herd: cannot start the forkserver: socketpair: ") +
                                                              std::strerror(errno));
  unique_fd ours(move_above_stdio(ends[0])), theirs(move_above_stdio(ends[1]));
  const int pid = spawn_self("forkserver " + std::to_string(::getpid()), {theirs.get()}, "forkserver");
  watch_group(pid);
  exclude_from_forks(ours.get());
  c.socket = std::move(ours);
  c.pid = pid;
}

// The server ended or is wedged: it is killed and reaped (it is this process's child).
void drop_server(forkserver_client& c) noexcept {
  if (c.socket) close_excluded(c.socket.release());
  if (c.pid > 0) {
    ::kill(c.pid, SIGKILL);
    while (::waitpid(c.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  c.pid = 0;
}

// One request and its answer: the pid, or -errno of the server's fork; false if the server
// could not be reached or did not answer.
bool ask(forkserver_client& c, const std::string& role, const std::vector<int>& descriptors, int& answer) {
  iovec part{const_cast<char*>(role.data()), role.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_descriptors)] = {};
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  attach_descriptors(message, control, CMSG_SPACE(sizeof(int) * descriptors.size()), descriptors);
  ssize_t sent;
  while ((sent = ::sendmsg(c.socket.get(), &message, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (sent < 0) return false;
  pollfd p{c.socket.get(), POLLIN, 0};
  int ready;
  while ((ready = ::poll(&p, 1, answer_timeout_ms)) < 0 && errno == EINTR) {
  }
  if (ready <= 0) return false;
  ssize_t got;
  while ((got = ::recv(c.socket.get(), &answer, sizeof answer, 0)) < 0 && errno == EINTR) {
  }
  return got == static_cast<ssize_t>(sizeof answer);
}

}  // namespace

// Lock order: the fork lock, then the client's (a start holds the fork lock when it asks).
void forkserver_ready() {
  fork_guard guard;
  locked_client locked = client();
  if (!locked.c.socket) start_server(locked.c);
}

int forkserver_pid() noexcept { return client().c.pid; }

int forkserver_start(const std::string& role, const std::vector<int>& descriptors, const std::string& what) {
  if (descriptors.size() > max_descriptors || role.size() > max_role)
    throw boost::system::system_error(errc::invalid_argument, "herd: cannot start '" + what + "': request too large");
  locked_client locked = client();
  forkserver_client& c = locked.c;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!c.socket) start_server(c);
    int answer = 0;
    if (ask(c, role, descriptors, answer)) {
      if (answer > 0) return answer;
      throw boost::system::system_error(errc::spawn_failed, "herd: cannot start '" + what + "': the forkserver (pid " +
                                                                std::to_string(c.pid) + ") could not fork: " +
                                                                std::strerror(-answer));
    }
    // It died (or is wedged): started again once.
    drop_server(c);
  }
  throw boost::system::system_error(errc::spawn_failed, "herd: cannot start '" + what +
                                                            "': the forkserver ended twice in a row while asked");
}

[[noreturn]] void run_forkserver(std::string_view role, std::string_view modules) noexcept {
  int parent = 0;
  if (std::sscanf(std::string(role).c_str(), "forkserver %d", &parent) != 1) std::_Exit(1);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != parent) std::_Exit(1);
  const int socket = spawned_channel_fd;
  // Every child it forks has its layout: one translation of the application's code for all.
  static const address_map* addresses = nullptr;
  try {
    addresses = new address_map(modules);
  } catch (...) {
    std::_Exit(1);
  }
  std::vector<char> buffer(max_role);
  std::vector<unique_fd> received;
  for (;;) {
    int flags = 0;
    const ssize_t n = receive_with_descriptors(socket, buffer, 0, max_descriptors, received, flags);
    if (n <= 0) std::_Exit(0);  // the application closed its end: it is gone or done
    const std::string child_role(buffer.data(), static_cast<std::size_t>(n));
    // CLONE_PARENT: the child is the application's, which watches and reaps it.
    const long pid = ::syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, nullptr, nullptr, 0);
    if (pid == 0) {
      ::close(socket);
      // Above the targets first, then into place (3, 4, …), the rest closed.
      const int highest = spawned_channel_fd + static_cast<int>(received.size());
      std::vector<int> moved;
      for (auto& fd : received) moved.push_back(::fcntl(fd.get(), F_DUPFD_CLOEXEC, highest + 1));
      for (std::size_t i = 0; i < moved.size(); ++i)
        if (moved[i] < 0 || ::dup2(moved[i], spawned_channel_fd + static_cast<int>(i)) < 0) std::_Exit(1);
      ::syscall(SYS_close_range, static_cast<unsigned>(highest), ~0u, 0u);
      ::setpgid(0, 0);
      refresh_cached_pid();  // a clone skips pthread_atfork's handlers
      run_role(child_role, *addresses);
    }
    const int answer = pid > 0 ? static_cast<int>(pid) : -errno;
    received.clear();
    while (::send(socket, &answer, sizeof answer, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace herd::detail
