// fork_process: the parent's side of starting a function child, and of reading its outcome.
#include "detail/child_registry.hpp"
#include "detail/descriptors.hpp"
#include "detail/fork_child.hpp"
#include "detail/fork_lock.hpp"
#include "detail/function_process.hpp"
#include "detail/group_watchdog.hpp"
#include "detail/outcome.hpp"
#include "detail/process_hooks.hpp"
#include "detail/reap.hpp"
#include "detail/unique_fd.hpp"
#include "detail/validate.hpp"

#include <herd/process.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

namespace herd::detail {
namespace {

std::atomic<unsigned> next_process_number{0};

// Returns an empty string, or what is wrong with `s` for stream `target`.
std::string check_stdio(int target, const stdio& s) {
  switch (s.type()) {
    case stdio::kind::unset:
    case stdio::kind::inherit:
    case stdio::kind::null:
    case stdio::kind::file:
      return {};
    case stdio::kind::fd:
      if (::fcntl(s.descriptor(), F_GETFD) < 0) return "descriptor " + std::to_string(s.descriptor()) + " is not open";
      return {};
    default:
      return std::string("a function child's ") + (target == 0 ? "stdin" : target == 1 ? "stdout" : "stderr") +
             " can be inherit(), null(), file() or fd()";
  }
}

}  // namespace

void read_outcome(int fd, std::string& received) noexcept {
  if (fd < 0) return;
  try {
    std::vector<char> buffer(64 * 1024);
    std::vector<unique_fd> memories;
    for (;;) {
      int flags = 0;
      const ssize_t n = receive_with_descriptors(fd, buffer, MSG_DONTWAIT, 4, memories, flags);
      if (n <= 0) return;  // all of it (or the peer never sent anything)
      // A memfd arrives with its marker, the last byte of this read.
      received += outcome_part_of_read(std::string_view(buffer.data(), static_cast<std::size_t>(n)), memories.size());
      for (const unique_fd& memory : memories) {
        const auto size = file_size(memory.get());
        if (!size) continue;
        const std::size_t at = received.size();
        received.resize(at + *size);
        if (!read_whole(memory.get(), received.data() + at, *size)) received.resize(at);  // reported unreadable
      }
    }
  } catch (...) {
    // Out of memory: what was read stays, and the outcome is reported unreadable.
  }
}

std::string checked_child_name(const process_options& options, const std::type_info& function_type,
                               const void* function_address) {
  if (this_process::is_daemon())
    throw boost::system::system_error(errc::daemon_cannot_start_children,
                                      "herd: process '" + this_process::name() + "' is a daemon and cannot start '" +
                                          describe_function(function_type, function_address) + "'");
  const stdio* streams[3] = {&options.std_in, &options.std_out, &options.std_err};
  for (int target = 0; target < 3; ++target)
    if (std::string problem = check_stdio(target, *streams[target]); !problem.empty())
      throw boost::system::system_error(errc::bad_stdio, "herd: cannot start " +
                                                             describe_function(function_type, function_address) +
                                                             ": " + problem);

  for (const auto& [key, value] : options.env) {
    if (const std::string problem = bad_environment_entry(key, value); !problem.empty())
      throw boost::system::system_error(errc::invalid_argument, "herd: cannot start " +
                                                                    describe_function(function_type, function_address) +
                                                                    ": process_options.env: " + problem);
  }
  return options.name.empty() ? "process-" + std::to_string(++next_process_number) : options.name;
}

std::shared_ptr<function_process> fork_process(const asio::any_io_executor& ex, const process_options& options,
                                               const std::type_info& function_type, const void* function_address,
                                               child_body body) {
  const std::string name = checked_child_name(options, function_type, function_address);

  // Text the parent buffered must not be printed again by the child, nor messages it packed
  // sent twice.
  flush_stdio();
  run_process_hooks(process_moment::before_fork);

  // If SIGCHLD is ignored, the kernel reaps a child that ends before the parent holds its
  // pidfd; then the child waits for the parent's word before it runs anything.
  struct sigaction sigchld {};
  ::sigaction(SIGCHLD, nullptr, &sigchld);
  const bool auto_reaped = sigchld.sa_handler == SIG_IGN || (sigchld.sa_flags & SA_NOCLDWAIT) != 0;

  // Everything the parent needs is allocated and registered before the fork: after it, every
  // page the parent writes is copied while the child still shares it.
  auto child = std::make_shared<function_process>(ex, name, options, function_type, function_address);
  remember(child);
  const pid_t parent = ::getpid();
  (void)current_pid();  // registered here, not in every child (a first use in a child writes pages)

  // From the outcome socket to the pidfd, every descriptor of this child is made and handed out
  // under the fork lock: a fork on another thread copies none of them. The parent's end and the
  // pidfd stay fork exclusions; the child's end and the go pipe are gone before the lock is.
  fork_guard guard;
  unique_fd channel_write = open_outcome_channel(*child, name);
  unique_fd go_read, go_write;
  if (auto_reaped) {
    int go[2];
    if (::pipe2(go, O_CLOEXEC) == 0) {
      go_read.reset(go[0]);
      go_write.reset(go[1]);
    }
  }

  // Signals wait until the child has put back default handlers: a SIGTERM that arrives in
  // between must kill the child, not run the parent's handler in it.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0) {
    go_write.reset();
    if (go_read) {
      char go;
      while (::read(go_read.get(), &go, 1) < 0 && errno == EINTR) {
      }
      go_read.reset();
    }
    const int channel = channel_write.release();
    guard.release_in_child();  // the mutex object is our copy
    run_child(options, name, parent, channel, body);  // closes the exclusions, the parent's end among them
  }
  const int fork_error = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  channel_write.reset();
  go_read.reset();
  if (pid < 0) {
    child->close_channel();
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + name + "': fork: " + std::strerror(fork_error));
  }

  ::setpgid(pid, pid);  // also in the parent, so that a signal sent right away reaches the group
  unique_fd pidfd(open_pidfd(pid));
  const int pidfd_error = errno;
  watch_started(*child, pid, std::move(pidfd), pidfd_error);
  go_write.reset();  // the child may run now
  return child;
}

unique_fd open_outcome_channel(function_process& child, const std::string& name) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + name + "': socketpair: " + std::strerror(errno));
  child.channel.reset(move_above_stdio(fds[0]));
  unique_fd channel_write(move_above_stdio(fds[1]));
  if (!child.channel || !channel_write)
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + name + "': socketpair: " + std::strerror(errno));
  exclude_from_forks(child.channel.get());
  return channel_write;
}

void watch_started(function_process& child, int pid, unique_fd pidfd, int pidfd_error) {
  if (pidfd) exclude_from_forks(pidfd.get());
  if (pidfd) watch_group(pid);
  if (!pidfd) {
    ::kill(pid, SIGKILL);
    child.close_channel();
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot watch '" + child.name + "' (pid " + std::to_string(pid) +
                                          "): pidfd_open: " + std::strerror(pidfd_error));
  }
  try {
    child.attach(pid, pidfd);
  } catch (...) {
    // Nobody watches it: stop and reap it before reporting the failure.
    ::kill(-pid, SIGKILL);
    reap(pid, pidfd.get(), true, false, exit_reason::stopped);
    child.close_channel();
    throw;
  }
}

}  // namespace herd::detail
