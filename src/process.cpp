#include <herd/process.hpp>

#include "detail/function_process.hpp"

#include "detail/group_watchdog.hpp"
#include "detail/io.hpp"
#include "detail/outcome.hpp"
#include "detail/process_hooks.hpp"
#include "detail/unique_fd.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <iostream>
#include <mutex>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace herd {
namespace detail {

namespace {

// ---------------------------------------------------------------------------------------------
// This process, and the function children it started (for atexit and active_children()).

// Which process this is: on the fork page (see io.hpp). In a child, `process_name` points to the
// name string of fork_process's frame in its copy of the parent's stack, which never unwinds
// there: pointing to it writes no other page.
fork_page& identity() { return fork_state(); }

const std::string& identity_name() {
  static const std::string main_name = "main";
  const std::string* name = identity().process_name;
  return name ? *name : main_name;
}

// A detached child: herd only needs to reap it (or, at exit, stop or join it), which plain
// system calls do without any executor.
struct detached_child {
  pid_t pid;
  int pidfd;  // owned
  bool daemon;
  stop_policy policy;
  std::string name;
};

struct child_registry {
  pid_t owner = 0;  // a plain fork() copies the registry; the copy is not the copier's
  std::vector<std::weak_ptr<function_process>> children;
  std::vector<detached_child> detached;
};

// The function children of this process. Guarded by fork_lock(); never destroyed (the atexit
// handler and late destructors use it).
child_registry& registry() {
  static auto* self = new child_registry;
  if (self->owner != current_pid()) {
    self->children.clear();
    self->detached.clear();  // their descriptors were the original's, closed by exec or not ours
    self->owner = current_pid();
  }
  return *self;
}

std::atomic<unsigned> next_process_number{0};

// Reaps detached children that have ended, as Python reaps finished processes whenever a new
// one starts or active_children() is asked. Called with fork_lock() held.
void reap_finished_detached() {
  auto& detached = registry().detached;
  std::erase_if(detached, [](const detached_child& c) {
    if (!reap(c.pid, c.pidfd, false, false, exit_reason::normal)) return false;
    close_excluded(c.pidfd);
    return true;
  });
}

// At a normal exit, as Python does: daemons are stopped, other children still running are
// joined. (A crash kills them all through PR_SET_PDEATHSIG.) Executors may be gone by now, so
// this uses plain system calls only.
void finish_children_at_exit() {
  std::vector<std::shared_ptr<function_process>> alive;
  std::vector<detached_child> detached;
  {
    fork_guard guard;
    for (auto& weak : registry().children)
      if (auto child = weak.lock()) alive.push_back(std::move(child));
    registry().children.clear();
    detached.swap(registry().detached);
  }
  for (auto& child : alive) child->finish_at_exit(child->daemon);
  for (auto& c : detached) {
    if (c.daemon)
      stop_and_reap(c.pid, c.pidfd, c.policy, exit_reason::parent_stopping);
    else
      reap(c.pid, c.pidfd, true, false, exit_reason::normal);
    close_excluded(c.pidfd);
  }
}

void remember(const std::shared_ptr<function_process>& child) {
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(finish_children_at_exit); });
  fork_guard guard;
  auto& children = registry().children;
  std::erase_if(children, [](const auto& weak) {
    auto child = weak.lock();
    return !child || child->status;
  });
  children.push_back(child);
  reap_finished_detached();
}

// ---------------------------------------------------------------------------------------------
// The child's side of fork_process.

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

void reset_signals_in_child() noexcept {
  // Handlers belong to the parent: an asio::signal_set handler writes to the parent's
  // self-pipe, so the child's SIGTERM would stop the parent.
  for (int signo = 1; signo < 65; ++signo)
    if (signo != SIGKILL && signo != SIGSTOP) set_disposition(signo, reinterpret_cast<unsigned long>(SIG_DFL));
  const unsigned long none = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, 8);
}

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

void flush_stdio() noexcept {
  try {
    std::cout.flush();
    std::clog.flush();
    std::cerr.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
}

std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type ? describe_function(*type, nullptr) : std::string("unknown exception");
}

void send_exception(int fd) noexcept {
  try {
    std::string message;
    std::string type = current_exception_type();
    try {
      throw;
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
      message = "(not derived from std::exception)";
    }
    const std::string record = encode_exception(type, message);
    send_outcome(fd, {record, {}});
  } catch (...) {
    send_outcome(fd, {lost_exception_record(), {}});
  }
}

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

  identity().process_name = &name;
  identity().daemon = options.daemon;

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

}  // namespace

void read_outcome(int fd, std::string& received) noexcept {
  if (fd < 0) return;
  try {
    std::vector<char> buffer(64 * 1024);
    for (;;) {
      iovec part{buffer.data(), buffer.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
      msghdr message{};
      message.msg_iov = &part;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      const ssize_t n = ::recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // all of it (or the peer never sent anything)
      const std::vector<unique_fd> memories = received_descriptors(message);
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

void result_sink::send_value(std::string_view bytes) {
  send_outcome(fd_, result_record(bytes));
}

// ---------------------------------------------------------------------------------------------
// fork_process: the parent's side.

std::shared_ptr<function_process> fork_process(const asio::any_io_executor& ex, const process_options& options,
                                               const std::type_info& function_type, const void* function_address,
                                               child_body body) {
  if (identity().daemon)
    throw boost::system::system_error(errc::daemon_cannot_start_children,
                                      "herd: process '" + identity_name() + "' is a daemon and cannot start '" +
                                          describe_function(function_type, function_address) + "'");
  const stdio* streams[3] = {&options.std_in, &options.std_out, &options.std_err};
  for (int target = 0; target < 3; ++target)
    if (std::string problem = check_stdio(target, *streams[target]); !problem.empty())
      throw boost::system::system_error(errc::bad_stdio, "herd: cannot start " +
                                                             describe_function(function_type, function_address) +
                                                             ": " + problem);

  for (const auto& [key, value] : options.env) {
    std::string problem = bad_environment_name(key);
    if (problem.empty()) problem = bad_c_string(value, "the value of " + key);
    if (!problem.empty())
      throw boost::system::system_error(errc::invalid_argument, "herd: cannot start " +
                                                                    describe_function(function_type, function_address) +
                                                                    ": process_options.env: " + problem);
  }
  const std::string name =
      options.name.empty() ? "process-" + std::to_string(++next_process_number) : options.name;

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
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + name + "': socketpair: " + std::strerror(errno));
  child->channel.reset(move_above_stdio(fds[0]));
  unique_fd channel_write(move_above_stdio(fds[1]));
  if (!child->channel || !channel_write)
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + name + "': socketpair: " + std::strerror(errno));
  exclude_from_forks(child->channel.get());
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
  if (pidfd) exclude_from_forks(pidfd.get());
  if (pidfd) watch_group(pid);
  go_write.reset();  // the child may run now
  if (!pidfd) {
    ::kill(pid, SIGKILL);
    child->close_channel();
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot watch '" + name + "' (pid " + std::to_string(pid) +
                                          "): pidfd_open: " + std::strerror(pidfd_error));
  }

  try {
    child->attach(pid, pidfd);
  } catch (...) {
    // Nobody watches it: stop and reap it before reporting the failure.
    ::kill(-pid, SIGKILL);
    reap(pid, pidfd.get(), true, false, exit_reason::stopped);
    child->close_channel();
    throw;
  }
  return child;
}

void run_awaitable(asio::awaitable<void> body) {
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

std::string describe_function(const std::type_info& type, const void* function_address) {
  if (function_address != nullptr) {
    Dl_info info{};
    if (::dladdr(function_address, &info) != 0 && info.dli_sname != nullptr &&
        info.dli_saddr == function_address) {
      int ok = -1;
      char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &ok);
      std::string symbol = ok == 0 ? demangled : info.dli_sname;
      std::free(demangled);
      return symbol;
    }
  }
  int ok = -1;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &ok);
  std::string readable = ok == 0 ? demangled : type.name();
  std::free(demangled);
  return readable;
}

namespace {
std::string describe_process(const function_process& state) {
  return "herd: process '" + state.name + "' (pid " + std::to_string(state.pid) + ", running " + state.function() +
         ")";
}
}  // namespace

std::exception_ptr outcome_of(const function_process& state, std::string& bytes) {
  const parsed_outcome outcome = parse_outcome(state.received);
  if (outcome.kind == outcome_kind::result) {
    bytes.assign(outcome.bytes);
    return nullptr;
  }
  if (outcome.kind == outcome_kind::exception)
    return std::make_exception_ptr(child_error(std::string(outcome.type), std::string(outcome.message), state.pid,
                                               state.name, state.function()));
  // Described only for a failure (naming the function demangles it).
  const std::string who = describe_process(state);
  const exit_status status = state.status.value_or(exit_status());
  if (outcome.kind == outcome_kind::unreadable)
    return std::make_exception_ptr(boost::system::system_error(errc::bad_message, who + " sent an unreadable outcome"));
  if (status.signaled())
    return std::make_exception_ptr(
        boost::system::system_error(errc::child_killed, who + " ended without a result: " + status.to_string()));
  return std::make_exception_ptr(
      boost::system::system_error(errc::child_exited, who + " ended without a result: " + status.to_string()));
}

boost::system::system_error empty_handle_error() {
  return boost::system::system_error(errc::not_running, "herd::process: the handle is empty (moved from or detached)");
}

void async_join_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                       asio::any_completion_handler<void(error_code, exit_status)> handler) {
  if (!state) return post_completion(ex, std::move(handler), error_code(errc::not_running), exit_status());
  run_process_hooks(process_moment::before_wait);  // the child may be waiting for what this process packed
  state->wait(std::move(handler));
}

void async_stop_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                       asio::any_completion_handler<void(error_code, exit_status)> handler) {
  if (!state) return post_completion(ex, std::move(handler), error_code(errc::not_running), exit_status());
  state->begin_stop(exit_reason::stopped);
  state->wait(std::move(handler));
}

void async_result_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                          asio::any_completion_handler<void(std::exception_ptr, std::string)> handler) {
  if (!state)
    return post_completion(ex, std::move(handler), std::make_exception_ptr(empty_handle_error()), std::string());
  run_process_hooks(process_moment::before_wait);
  // The slot of `handler` reaches the wait: cancelling stops waiting, nothing else.
  auto slot = asio::get_associated_cancellation_slot(handler);
  auto handler_executor = asio::get_associated_executor(handler, state->executor);
  state->wait(asio::bind_cancellation_slot(
      slot, asio::bind_executor(handler_executor, [state, handler = std::move(handler)](error_code ec,
                                                                                          exit_status) mutable {
        if (ec)
          return std::move(handler)(
              std::make_exception_ptr(boost::system::system_error(ec, describe_process(*state) + ": awaiting its result")),
              std::string());
        std::string bytes;
        std::exception_ptr error = outcome_of(*state, bytes);
        std::move(handler)(error, std::move(bytes));
      })));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// process_base

namespace {
[[noreturn]] void throw_empty() { throw detail::empty_handle_error(); }
}  // namespace

process_base::process_base(std::shared_ptr<detail::function_process> state) noexcept
    : state_(std::move(state)), executor_(state_ ? state_->executor : executor_type()) {}

process_base::process_base(process_base&& other) noexcept
    : state_(std::move(other.state_)), executor_(other.executor_) {}

process_base& process_base::operator=(process_base&& other) noexcept {
  if (this != &other) {
    process_base discarded(std::move(*this));
    state_ = std::move(other.state_);
    executor_ = other.executor_;
  }
  return *this;
}

process_base::~process_base() {
  if (!state_ || state_->status || state_->try_reap()) return;
  state_->begin_stop(exit_reason::stopped);
}

process_base::executor_type process_base::get_executor() const noexcept { return executor_; }
int process_base::pid() const noexcept { return state_ ? state_->pid : -1; }

const std::string& process_base::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

bool process_base::daemon() const noexcept { return state_ && state_->daemon; }

const std::string& process_base::function() const noexcept {
  static const std::string none;
  return state_ ? state_->function() : none;
}

bool process_base::is_alive() { return state_ && !state_->try_reap(); }

std::optional<int> process_base::exit_code() const noexcept {
  if (!state_ || !state_->status) return std::nullopt;
  return state_->status->python_exitcode();
}

std::optional<exit_status> process_base::status() const noexcept {
  return state_ ? state_->status : std::nullopt;
}

exit_status process_base::join() {
  if (!state_) throw_empty();
  detail::run_process_hooks(detail::process_moment::before_wait);
  state_->join_blocking(std::nullopt);
  return *state_->status;
}

std::optional<exit_status> process_base::join(std::chrono::milliseconds timeout) {
  if (!state_) throw_empty();
  detail::run_process_hooks(detail::process_moment::before_wait);
  if (!state_->join_blocking(timeout)) return std::nullopt;
  return state_->status;
}

void process_base::terminate() {
  if (!state_) throw_empty();
  state_->begin_stop(exit_reason::stopped);
}
void process_base::kill() { signal(SIGKILL); }
void process_base::interrupt() { signal(SIGINT); }
void process_base::signal(int signo) {
  if (!state_) throw_empty();
  state_->signal_group(signo);
}

void process_base::detach() noexcept {
  if (!state_) return;
  // herd keeps only what plain system calls need: the pid and the pidfd. No executor is involved,
  // so the child may outlive this handle's io_context.
  if (!state_->try_reap()) {
    const int pidfd = state_->release_pidfd();
    if (pidfd >= 0) {
      detail::fork_guard guard;
      try {
        detail::registry().detached.push_back(
            detail::detached_child{state_->pid, pidfd, state_->daemon, state_->policy, state_->name});
      } catch (...) {
        detail::close_excluded(pidfd);  // out of memory: the child will be a zombie until this process ends
      }
    }
  }
  state_->close_channel();
  state_.reset();
}

// ---------------------------------------------------------------------------------------------

namespace this_process {
int pid() noexcept { return detail::current_pid(); }
int ppid() noexcept { return ::getppid(); }
const std::string& name() noexcept { return detail::identity_name(); }
bool is_daemon() noexcept { return detail::identity().daemon; }
}  // namespace this_process

std::vector<child_info> active_children() {
  std::vector<std::shared_ptr<detail::function_process>> children;
  std::vector<child_info> running;
  {
    detail::fork_guard guard;
    for (auto& weak : detail::registry().children)
      if (auto child = weak.lock()) children.push_back(std::move(child));
    detail::reap_finished_detached();
    for (const auto& c : detail::registry().detached) running.push_back(child_info{c.pid, c.name, c.daemon});
  }
  for (auto& child : children)
    if (child->pid != 0 && !child->try_reap()) running.push_back(child_info{child->pid, child->name, child->daemon});
  return running;
}

unsigned cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1u;
}

}  // namespace herd
