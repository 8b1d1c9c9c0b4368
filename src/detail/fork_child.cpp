#include "fork_child.hpp"

#include "descriptors.hpp"
#include "fork_lock.hpp"
#include "outcome.hpp"
#include "process_hooks.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <fcntl.h>
#include <iostream>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace herd::detail {
namespace {

// The child's own steps use system calls directly: a libc function the parent never called is
// bound lazily, and the dynamic linker's lookup would run again in every child (measured: it was
// a visible part of a start).
struct kernel_sigaction {
  unsigned long handler;  // first on every architecture; the rest zero: no flags, empty mask
  unsigned long rest[3];
};

void set_disposition(int signo, unsigned long handler) noexcept {
  const kernel_sigaction action{handler, {0, 0, 0}};
  ::syscall(SYS_rt_sigaction, signo, &action, nullptr, 8);
}

}  // namespace

void reset_signals_in_child() noexcept {
  // Handlers belong to the parent: an asio::signal_set handler writes to the parent's
  // self-pipe, so the child's SIGTERM would stop the parent.
  for (int signo = 1; signo < 65; ++signo)
    if (signo != SIGKILL && signo != SIGSTOP) set_disposition(signo, reinterpret_cast<unsigned long>(SIG_DFL));
  const unsigned long none = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, 8);
}

namespace {

[[noreturn]] void exit_child(int code) noexcept {
  ::syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

bool write_all(int fd, const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t n = static_cast<ssize_t>(::syscall(SYS_write, fd, data, size));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Sends the outcome record (detail/outcome.hpp) without ever waiting: the parent reads it only
// once this process has ended. What travels inline and fits in the socket's buffer goes inline;
// the rest in a memfd passed with the marker (SCM_RIGHTS), which the kernel keeps in flight
// after this process is gone. MSG_NOSIGNAL: a parent that stopped listening (a detached child)
// is EPIPE, not SIGPIPE.
void send_outcome(int fd, outcome_record record) noexcept {
  const std::size_t total = record.size();
  std::size_t sent = 0;
  if (travels_inline(total)) {
    iovec parts[2] = {{const_cast<char*>(record.head.data()), record.head.size()},
                      {const_cast<char*>(record.body.data()), record.body.size()}};
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = 2;
    for (;;) {
      const long n = ::syscall(SYS_sendmsg, fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) sent = static_cast<std::size_t>(n);
      if (n >= 0 || errno != EINTR) break;
    }
    if (sent == total) return;
  }
  const int memory = static_cast<int>(::syscall(SYS_memfd_create, "herd-outcome", MFD_CLOEXEC));
  if (memory < 0) return;  // nothing sent: the parent reports an end without a result
  const outcome_record rest = unsent_part(record, sent);
  if (write_all(memory, rest.head.data(), rest.head.size()) && write_all(memory, rest.body.data(), rest.body.size())) {
    char marker = memfd_marker;
    iovec part{&marker, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    attach_descriptor(message, control, sizeof control, memory);
    while (::syscall(SYS_sendmsg, fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
  }
  ::syscall(SYS_close, memory);
}

std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type ? describe_function(*type, nullptr) : std::string("unknown exception");
}

void send_exception(int fd) noexcept {
  const std::string record = current_exception_record();
  send_outcome(fd, record.empty() ? outcome_record{lost_exception_record(), {}} : outcome_record{record, {}});
}

bool apply_stdio_in_child(int target, const stdio& s) noexcept {
  int fd = -1;
  switch (s.type()) {
    case stdio::kind::null:
      fd = ::open("/dev/null", target == 0 ? O_RDONLY : O_WRONLY);
      break;
    case stdio::kind::file:
      fd = ::open(s.path().c_str(), target == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | (s.append() ? O_APPEND : O_TRUNC)),
                  0666);
      break;
    case stdio::kind::fd:
      return s.descriptor() == target || ::dup2(s.descriptor(), target) == target;
    default:
      return true;
  }
  if (fd < 0) return false;
  const bool ok = fd == target || ::dup2(fd, target) == target;
  if (fd != target) ::close(fd);
  return ok;
}

}  // namespace

exception_description describe_current_exception() {
  exception_description d{current_exception_type(), {}};
  try {
    throw;
  } catch (const std::exception& e) {
    d.message = e.what();
  } catch (...) {
    d.message = "(not derived from std::exception)";
  }
  return d;
}

std::string current_exception_record() noexcept {
  try {
    const exception_description d = describe_current_exception();
    return encode_exception(d.type, d.message);
  } catch (...) {
    return {};  // out of memory
  }
}

void flush_stdio() noexcept {
  try {
    std::cout.flush();
    std::clog.flush();
    std::cerr.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

[[noreturn]] void run_child(const process_options& options, const std::string& name, pid_t parent, int channel,
                            child_body body) noexcept {
  // The registries describe the parent's children, not ours (they notice by pid when next
  // used); the lock was held across fork.
  close_fork_exclusions_in_child();

  reset_signals_in_child();
  ::syscall(SYS_setpgid, 0, 0);
  if (options.die_with_parent) {
    ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::syscall(SYS_getppid) != parent) exit_child(1);  // the parent died before the flag was set
  }
  const stdio* streams[3] = {&options.std_in, &options.std_out, &options.std_err};
  for (int target = 0; target < 3; ++target)
    if (!apply_stdio_in_child(target, *streams[target])) exit_child(1);
  for (const auto& [key, value] : options.env) ::setenv(key.c_str(), value.c_str(), 1);

  // Which process this is, on the fork page: `process_name` points to the name string of
  // fork_process's frame in this copy of the parent's stack, which never unwinds here, so
  // pointing to it writes no other page.
  fork_state().process_name = &name;
  fork_state().daemon = options.daemon;
  finish_child(channel, body);
}

[[noreturn]] void finish_child(int channel, child_body body) noexcept {
  int code = 0;
  try {
    result_sink sink(channel);
    body(sink);
  } catch (...) {
    send_exception(channel);
    code = 1;  // Python's exit code for an exception in run()
  }
  run_process_hooks(process_moment::child_exit);  // what the function put leaves with it
  flush_stdio();
  exit_child(code);
}

void result_sink::send_value(std::string_view bytes) {
  send_outcome(fd_, result_record(bytes));
}

void run_awaitable(asio::awaitable<void> body) {
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace herd::detail
