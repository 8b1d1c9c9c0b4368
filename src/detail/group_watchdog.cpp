#include "group_watchdog.hpp"

#include "descriptors.hpp"
#include "fork_lock.hpp"
#include "launcher.hpp"
#include "reap.hpp"
#include "unique_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace herd::detail {
namespace {

// The outer shell backgrounds the loop and exits at once, so the loop is nobody's child here
// (the init process or a subreaper adopts it) and holds nothing of this process but the pipe,
// fd 3 (an asynchronous list's stdin is /dev/null). Groups are kept as " 12 34 ".
constexpr const char* script =
    "exec 3<&0 </dev/null\n"
    "trap '' HUP INT QUIT TERM PIPE\n"
    "(\n"
    "  groups=' '\n"
    "  while read -r op g <&3; do\n"
    "    case $op in\n"
    "      +) groups=\"$groups$g \" ;;\n"
    "      -) case $groups in *\" $g \"*) groups=\"${groups%% $g *} ${groups#* $g }\" ;; esac ;;\n"
    "    esac\n"
    "  done\n"
    "  for g in $groups; do kill -9 -$g 2>/dev/null; done\n"
    ") &\n";

struct watchdog_state {
  int owner = 0;  // the process this pipe's write end belongs to (a fork child makes its own)
  int fd = -1;
};
watchdog_state the_watchdog;  // guarded by the fork lock

int start_watchdog() noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
  unique_fd read_end(fds[0]), write_end(move_above_stdio(fds[1]));
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  unique_fd null_fd(null >= 0 ? move_above_stdio(null) : -1);
  unique_fd input(move_above_stdio(read_end.release()));
  if (!write_end || !input || !null_fd) return -1;

  char shell[] = "/bin/sh", dash_c[] = "-c";
  char* argv[] = {shell, dash_c, const_cast<char*>(script), nullptr};
  char* envp[] = {nullptr};
  launch_request request;
  request.path = "/bin/sh";
  request.argv = argv;
  request.envp = envp;
  request.stdio[0] = input.get();
  request.stdio[1] = null_fd.get();
  request.stdio[2] = null_fd.get();
  request.die_with_parent = false;  // it must outlive this process: that is its whole point
  const launch_result launched = launch(request);
  if (launched.error != 0) return -1;
  // The outer shell ends as soon as the loop is in the background.
  reap_discarding_status(launched.pidfd);
  ::close(launched.pidfd);
  const int fd = write_end.release();
  exclude_from_forks(fd);
  return fd;
}

void send(char op, int pgid) noexcept {
  char line[24];
  const int n = std::snprintf(line, sizeof line, "%c %d\n", op, pgid);
  // One write of less than PIPE_BUF bytes: whole, never interleaved with another thread's.
  if (write_without_sigpipe(the_watchdog.fd, line, static_cast<std::size_t>(n)) < 0 && errno == EPIPE) {
    close_excluded(the_watchdog.fd);  // the watchdog is gone: start another on the next start
    the_watchdog.fd = -1;
  }
}

}  // namespace

void watch_group(int pgid) noexcept {
  fork_guard guard;
  if (the_watchdog.owner != current_pid()) the_watchdog = {current_pid(), -1};  // a fork child: not ours
  if (the_watchdog.fd < 0) the_watchdog.fd = start_watchdog();
  if (the_watchdog.fd >= 0) send('+', pgid);
}

void forget_group(int pgid) noexcept {
  fork_guard guard;
  if (the_watchdog.owner != current_pid() || the_watchdog.fd < 0) return;
  send('-', pgid);
}

}  // namespace herd::detail
