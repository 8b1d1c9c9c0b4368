#include <herd/child.hpp>
#include <herd/error.hpp>

#include "detail/executable.hpp"
#include "detail/group_watchdog.hpp"
#include "detail/descriptors.hpp"
#include "detail/fork_lock.hpp"
#include "detail/launcher.hpp"
#include "detail/post_completion.hpp"
#include "detail/program_process.hpp"
#include "detail/reap.hpp"
#include "detail/unique_fd.hpp"
#include "detail/validate.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

extern char** environ;

namespace herd {
namespace detail {
namespace {

constexpr const char* stream_names[3] = {"stdin", "stdout", "stderr"};

std::string quoted(const std::string& text) { return "'" + text + "'"; }

// The child's environment as "NAME=value" strings.
std::vector<std::string> build_environment(const command& cmd) {
  std::vector<std::string> entries;
  if (cmd.inherits_environment())
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) entries.emplace_back(*entry);
  for (const auto& [name, value] : cmd.environment_changes()) {
    const std::string prefix = name + "=";
    std::erase_if(entries, [&](const std::string& e) { return e.compare(0, prefix.size(), prefix) == 0; });
    if (value) entries.push_back(prefix + *value);
  }
  return entries;
}

std::string search_path_of(const std::vector<std::string>& environment) {
  for (const auto& entry : environment)
    if (entry.compare(0, 5, "PATH=") == 0) return entry.substr(5);
  return "/bin:/usr/bin";  // execvp's default without PATH
}

std::vector<char*> pointers_to(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

start_result failure(errc code, int system_error, std::string message) {
  start_result r;
  r.error = code;
  r.system_error = system_error;
  r.message = "herd: " + std::move(message);
  return r;
}

// The descriptors one launch needs: what the child gets, and what the parent keeps.
struct stdio_plan {
  std::array<int, 3> child_fds{-1, -1, -1};
  std::array<unique_fd, 3> child_owned;   // closed in the parent after the launch
  std::array<unique_fd, 3> parent_ends;   // pipes the parent keeps
};

// Returns an empty string on success, else what went wrong.
std::string plan_stream(int target, const stdio& s, stdio_plan& plan) {
  auto own = [&](int fd) {
    plan.child_owned[target].reset(fd);
    plan.child_fds[target] = fd;
  };
  switch (s.type()) {
    case stdio::kind::unset:
    case stdio::kind::inherit:
      return {};
    case stdio::kind::null: {
      const int fd = move_above_stdio(::open("/dev/null", (target == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
      if (fd < 0) return std::string("cannot open /dev/null: ") + std::strerror(errno);
      own(fd);
      return {};
    }
    case stdio::kind::pipe:
    case stdio::kind::bytes: {
      if (s.type() == stdio::kind::bytes && target != 0) return "stdio::bytes() is for stdin only";
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("cannot create a pipe: ") + std::strerror(errno);
      unique_fd read_end(move_above_stdio(fds[0])), write_end(move_above_stdio(fds[1]));
      if (!read_end || !write_end) return std::string("cannot create a pipe: ") + std::strerror(errno);
      if (target == 0) {
        own(read_end.release());
        plan.parent_ends[target] = std::move(write_end);
      } else {
        own(write_end.release());
        plan.parent_ends[target] = std::move(read_end);
      }
      return {};
    }
    case stdio::kind::file: {
      const int flags = target == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | (s.append() ? O_APPEND : O_TRUNC));
      const int fd = move_above_stdio(::open(s.path().c_str(), flags | O_CLOEXEC, 0666));
      if (fd < 0) return "cannot open " + quoted(s.path()) + ": " + std::strerror(errno);
      own(fd);
      return {};
    }
    case stdio::kind::fd: {
      if (::fcntl(s.descriptor(), F_GETFD) < 0)
        return "descriptor " + std::to_string(s.descriptor()) + " is not open: " + std::strerror(errno);
      if (s.descriptor() == target || s.descriptor() > 2) {
        plan.child_fds[target] = s.descriptor();
        return {};
      }
      // Another stdio number: copy it out of the way of the dup2 sequence.
      const int fd = copy_above_stdio(s.descriptor());
      if (fd < 0) return std::string("cannot duplicate a descriptor: ") + std::strerror(errno);
      own(fd);
      return {};
    }
    case stdio::kind::to_stdout:
      if (target != 2) return "stdio::to_stdout() is for stderr only";
      plan.child_fds[target] = launch_request::same_as_stdout;
      return {};
  }
  return "unknown stdio kind";
}

}  // namespace

// Empty, or what execve could not take as given: a NUL in the program or an argument, a bad
// environment name, a NUL in a value.
std::string bad_command(const command& cmd) {
  std::string problem = bad_c_string(cmd.program(), "the program name");
  for (std::size_t i = 0; problem.empty() && i < cmd.arguments().size(); ++i)
    problem = bad_c_string(cmd.arguments()[i], "argument " + std::to_string(i + 1));
  for (const auto& [name, value] : cmd.environment_changes())
    if (problem.empty()) problem = value ? bad_environment_entry(name, *value) : bad_environment_name(name);
  return problem;
}

start_result launch_program(const asio::any_io_executor& ex, const command& cmd) {
  const std::string name = cmd.to_string();
  if (std::string problem = bad_command(cmd); !problem.empty())
    return failure(errc::invalid_argument, EINVAL, "cannot start " + quoted(name) + ": " + problem);
  std::vector<std::string> environment = build_environment(cmd);
  const std::string search_path = search_path_of(environment);
  const std::filesystem::path cwd = cmd.working_directory().value_or(std::string());
  const std::filesystem::path executable = find_executable(cmd.program(), search_path, cwd);
  if (executable.empty()) {
    std::string where = cmd.program().find('/') != std::string::npos
                            ? (cwd.empty() ? std::string() : " (relative to " + quoted(cwd.string()) + ")")
                            : " in PATH (" + search_path + ")";
    return failure(errc::program_not_found, ENOENT,
                   "cannot start " + quoted(name) + ": no executable " + quoted(cmd.program()) + where);
  }

  // From the first pipe to the parent's ends in their streams, under the fork lock: a function
  // child forked on another thread meanwhile would keep copies of them (declared before `plan`,
  // so the child's ends are closed before it lets go).
  fork_guard guard;
  stdio_plan plan;
  const stdio* streams[3] = {&cmd.std_in(), &cmd.std_out(), &cmd.std_err()};
  for (int target = 0; target < 3; ++target) {
    std::string problem = plan_stream(target, *streams[target], plan);
    if (!problem.empty())
      return failure(errc::bad_stdio, errno,
                     "cannot start " + quoted(name) + ": " + stream_names[target] + ": " + problem);
  }

  std::vector<std::string> argument_storage;
  argument_storage.reserve(cmd.arguments().size() + 1);
  argument_storage.push_back(cmd.program());
  argument_storage.insert(argument_storage.end(), cmd.arguments().begin(), cmd.arguments().end());
  std::vector<char*> argv = pointers_to(argument_storage);
  std::vector<char*> envp = pointers_to(environment);

  launch_request request;
  request.path = executable.c_str();
  request.argv = argv.data();
  request.envp = envp.data();
  request.working_directory = cmd.working_directory() ? cmd.working_directory()->c_str() : nullptr;
  for (int i = 0; i < 3; ++i) request.stdio[i] = plan.child_fds[i];
  request.die_with_parent = cmd.die_with_parent();

  const launch_result launched = launch(request);
  if (launched.error != 0) {
    const std::string step = launched.failed_step ? launched.failed_step : "launch";
    const std::string reason = std::strerror(launched.error);
    if (step == "chdir")
      return failure(errc::bad_working_directory, launched.error,
                     "cannot start " + quoted(name) + ": cannot enter working directory " +
                         quoted(cwd.string()) + ": " + reason);
    if (step == "execve" && launched.error == ENOENT)
      return failure(errc::program_not_found, launched.error,
                     "cannot start " + quoted(name) + ": " + quoted(executable.string()) + ": " + reason);
    return failure(errc::spawn_failed, launched.error, "cannot start " + quoted(name) + ": " + step + ": " + reason);
  }

  unique_fd pidfd(launched.pidfd);
  exclude_from_forks(pidfd.get());
  watch_group(launched.pid);
  std::shared_ptr<program_process> impl;
  try {
    impl = std::make_shared<program_process>(ex, name, launched.pid, pidfd, cmd.stop(), cmd.keep_descendants());
  } catch (...) {
    include_in_forks(pidfd.get());
    // Nobody owns the process yet: stop and reap it before reporting the failure.
    ::kill(-launched.pid, SIGKILL);
    reap_discarding_status(pidfd.get());
    throw;
  }
  if (plan.parent_ends[0]) impl->in.emplace(ex, plan.parent_ends[0].release());
  if (plan.parent_ends[1]) impl->out.emplace(ex, plan.parent_ends[1].release());
  if (plan.parent_ends[2]) impl->err.emplace(ex, plan.parent_ends[2].release());
  if (cmd.std_in().type() == stdio::kind::bytes) {
    std::weak_ptr<program_process> weak = impl;
    impl->in->async_write(cmd.std_in().data(), [weak](error_code, std::size_t) {
      if (auto self = weak.lock(); self && self->in) self->in->close();
    });
  }
  start_result result;
  result.child = std::move(impl);
  return result;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// herd::child

namespace {

detail::start_result start_or_throw(const asio::any_io_executor& ex, const command& cmd) {
  detail::start_result started = detail::launch_program(ex, cmd);
  if (started.error) throw boost::system::system_error(started.error, started.message);
  return started;
}

[[noreturn]] void throw_not_running() {
  throw boost::system::system_error(errc::not_running, "herd::child: the handle is empty (moved from or detached)");
}

}  // namespace

child::child(const executor_type& ex, const command& cmd) : executor_(ex), impl_(start_or_throw(ex, cmd).child) {}

child::child(const executor_type& ex, const command& cmd, error_code& ec) : executor_(ex) {
  detail::start_result started = detail::launch_program(ex, cmd);
  ec = started.error;
  impl_ = std::move(started.child);
}

child::child(child&& other) noexcept : executor_(other.executor_), impl_(std::move(other.impl_)) {}

child& child::operator=(child&& other) noexcept {
  if (this != &other) {
    child discarded(std::move(*this));
    executor_ = other.executor_;
    impl_ = std::move(other.impl_);
  }
  return *this;
}

child::~child() {
  if (!impl_ || impl_->status || impl_->try_reap()) return;
  // Nobody reads any more: let a writing child see EPIPE rather than block.
  if (impl_->out) impl_->out->close();
  if (impl_->err) impl_->err->close();
  impl_->begin_stop(exit_reason::stopped);
}

child::executor_type child::get_executor() const noexcept { return executor_; }
int child::pid() const noexcept { return impl_ ? impl_->pid : -1; }

const std::string& child::name() const noexcept {
  static const std::string none;
  return impl_ ? impl_->name : none;
}

bool child::is_alive() {
  if (!impl_) return false;
  if (impl_->status) return false;
  return !impl_->try_reap();
}

std::optional<exit_status> child::status() const noexcept { return impl_ ? impl_->status : std::nullopt; }

namespace {
template <typename Stream>
Stream& stream_or_throw(const detail::process_core& impl, std::optional<Stream>& stream, const char* which) {
  if (!stream)
    throw boost::system::system_error(errc::bad_stdio, std::string("herd: ") + which + " of " + impl.describe() +
                                                           " is not a pipe (use stdio::pipe())");
  return *stream;
}
}  // namespace

pipe_writer& child::std_in() {
  if (!impl_) throw_not_running();
  return stream_or_throw(*impl_, impl_->in, "stdin");
}

pipe_reader& child::std_out() {
  if (!impl_) throw_not_running();
  return stream_or_throw(*impl_, impl_->out, "stdout");
}

pipe_reader& child::std_err() {
  if (!impl_) throw_not_running();
  return stream_or_throw(*impl_, impl_->err, "stderr");
}

void child::async_wait_erased(asio::any_completion_handler<void(error_code, exit_status)> handler) {
  if (!impl_) return detail::post_completion(executor_, std::move(handler), error_code(errc::not_running), exit_status());
  impl_->wait(std::move(handler));
}

void child::async_stop_erased(asio::any_completion_handler<void(error_code, exit_status)> handler) {
  if (!impl_) return detail::post_completion(executor_, std::move(handler), error_code(errc::not_running), exit_status());
  impl_->begin_stop(exit_reason::stopped);
  impl_->wait(std::move(handler));
}

void child::close_stdin() noexcept {
  if (impl_ && impl_->in) impl_->in->close();
}

void child::terminate() {
  if (!impl_) throw_not_running();
  impl_->begin_stop(exit_reason::stopped);
}

void child::kill() { signal(SIGKILL); }
void child::interrupt() { signal(SIGINT); }

void child::signal(int signo) {
  if (!impl_) throw_not_running();
  impl_->signal_group(signo);
}

}  // namespace herd
