/// @file herd/child.hpp
/// `herd::child`: a running program whose streams and exit the parent awaits.
#pragma once

#include <herd/command.hpp>
#include <herd/config.hpp>
#include <herd/exit_status.hpp>
#include <herd/pipe_stream.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <memory>
#include <optional>
#include <string>

namespace herd {
class scope;
namespace detail {
struct program_process;
struct core_access;
}

/// A program started from a `command`, streamed and awaited from the parent's event loop.
///
/// The program leads its own process group; herd waits on it through a pidfd (no SIGCHLD
/// handler, no `waitpid(-1)`), so it never reaps other libraries' children.
///
/// Standard streams left `unset` in the command are inherited. Streams set to
/// `stdio::pipe()` are available as `std_in()`, `std_out()` and `std_err()`; `stdio::bytes`
/// is written to stdin in the background, then stdin is closed.
///
/// Destroying a child that still runs stops it with its stop policy in the background
/// (on its executor) and reaps it; if the executor never runs again, the destructor of the
/// last internal reference sends SIGKILL and reaps at once. Either way no zombie is left.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe. If the executor runs on several
///   threads, give the child a strand.
class child {
 public:
  using executor_type = asio::any_io_executor;

  /// Starts `cmd`. Throws `boost::system::system_error` whose message names the program
  /// and what failed (`errc::program_not_found`, `bad_working_directory`, `bad_stdio`, `spawn_failed`).
  child(const executor_type& ex, const command& cmd);
  /// Starts `cmd`; on failure sets `ec` and leaves the child empty (`valid()` is false).
  child(const executor_type& ex, const command& cmd, error_code& ec);
  child(child&&) noexcept;
  child& operator=(child&&) noexcept;
  ~child();

  executor_type get_executor() const noexcept;
  /// False for a moved-from child or one whose launch failed.
  bool valid() const noexcept { return impl_ != nullptr; }
  int pid() const noexcept;
  /// The command as started, for messages.
  const std::string& name() const noexcept;

  /// True until the child has ended. Polls without blocking (like Python's is_alive()).
  bool is_alive();
  /// The final status, once the child has ended and been reaped.
  std::optional<exit_status> status() const noexcept;

  /// The parent's ends of the child's pipes. Throws `boost::system::system_error` with
  /// `errc::bad_stdio` if that stream of the command is not `stdio::pipe()`.
  pipe_writer& std_in();
  pipe_reader& std_out();
  pipe_reader& std_err();

  /// Waits for the child to end and reaps it (the process group's leftovers are killed unless
  /// the command keeps descendants).
  /// @par Completion signature `void(error_code, exit_status)`.
  /// @par Cancellation terminal, partial, total: stops waiting; the child is untouched and a
  ///   later async_wait still works.
  template <asio::completion_token_for<void(error_code, exit_status)> Token = default_token>
  auto async_wait(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, exit_status)>(
        [this](auto handler) { async_wait_erased(std::move(handler)); }, token);
  }

  /// Stops the child with its stop policy (close stdin, polite signal to the group, grace,
  /// SIGKILL to the group) and completes with its final status.
  /// @par Completion signature `void(error_code, exit_status)`.
  /// @par Cancellation terminal, partial, total: stops waiting; the stop goes on.
  template <asio::completion_token_for<void(error_code, exit_status)> Token = default_token>
  auto async_stop(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code, exit_status)>(
        [this](auto handler) { async_stop_erased(std::move(handler)); }, token);
  }

  /// Closes the child's stdin pipe (it reads end of file); no effect if stdin is not a pipe.
  void close_stdin() noexcept;

  /// Starts the stop policy and returns at once; async_wait() reports the final status,
  /// with reason `exit_reason::stopped`.
  void terminate();
  /// SIGKILL to the child's process group.
  void kill();
  /// SIGINT to the child's process group.
  void interrupt();
  /// Any signal to the child's process group.
  void signal(int signo);

 private:
  friend struct detail::core_access;  // scopes adopt the child
  void async_wait_erased(asio::any_completion_handler<void(error_code, exit_status)> handler);
  void async_stop_erased(asio::any_completion_handler<void(error_code, exit_status)> handler);

  executor_type executor_;
  std::shared_ptr<detail::program_process> impl_;
};

}  // namespace herd
