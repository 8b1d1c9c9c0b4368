/// @file herd/error.hpp
/// herd's error codes: `herd::errc`, the "herd" error category and `make_error_code`.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <type_traits>

namespace herd {

// As in config.hpp, which this header does without: codec.hpp and its users need no executor.
using boost::system::error_code;

/// Errors herd reports. Each value has a message in the "herd" category; operations add the
/// pid and the program or function name where they can (see exit_status::describe()).
enum class errc : int {
  program_not_found = 1,   ///< the program is not in PATH, or the path does not name an executable file
  bad_working_directory,   ///< the working directory given to a command does not exist or cannot be entered
  bad_stdio,               ///< a file or descriptor given for stdin, stdout or stderr cannot be used
  spawn_failed,            ///< the operating system refused to start the process (exit_status::spawn_errno says why)
  child_exited,            ///< a child exited with a non-zero code where success was required
  child_killed,            ///< a child was killed by a signal where success was required
  child_exception,         ///< a function child threw an exception
  worker_died,             ///< a pool worker died with the task in flight
  poison_task,             ///< a task killed workers repeatedly and was quarantined
  timed_out,               ///< the operation did not finish in time
  closed,                  ///< the channel or stream was closed
  would_block,             ///< a non-blocking call found nothing to do
  message_too_large,       ///< a message exceeds the channel's limit
  bad_message,             ///< a message could not be decoded
  owner_died,              ///< the holder of a lock died; the caller now owns it
  not_owner,               ///< released by a process or thread that does not own it
  not_running,             ///< the process is not running (never started, or already reaped)
  invalid_argument,        ///< an argument is not valid (the message of the exception says which)
  daemon_cannot_start_children,  ///< a daemon process tried to start a child (as in Python)
  broken_barrier,          ///< a barrier was broken (a wait timed out, was cancelled, or abort() or reset() was called)
  initializer_failed,      ///< a pool's initializer failed in a worker: no task of that pool runs
  build_mismatch,          ///< code sent to another process names a build of the program that process does not run
  stage_failed,            ///< a pipeline stage failed on an item (pipeline_error::original() says how)
  restart_intensity,       ///< a supervisor's child ended more often than its restart intensity allows
};

/// The "herd" error category.
const boost::system::error_category& error_category() noexcept;

namespace detail {
/// Throws `system_error(ec)` whose what() is "herd: <operation>: <the error's message>".
[[noreturn]] void throw_error(error_code ec, const std::string& operation);
}  // namespace detail

inline error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// What a function child threw, rethrown in the parent by `process::async_result()`:
/// the exception's type name and message, and which process ran what.
class child_error : public boost::system::system_error {
 public:
  child_error(std::string exception_type, std::string exception_message, int pid, std::string process_name,
              std::string function);

  /// The dynamic type of the exception, demangled ("std::runtime_error").
  const std::string& exception_type() const noexcept { return exception_type_; }
  /// Its what(), or a note if it was not a std::exception.
  const std::string& exception_message() const noexcept { return exception_message_; }
  int pid() const noexcept { return pid_; }
  const std::string& process_name() const noexcept { return process_name_; }
  /// The function the child ran, as well as herd could name it.
  const std::string& function() const noexcept { return function_; }

 private:
  std::string exception_type_;
  std::string exception_message_;
  int pid_;
  std::string process_name_;
  std::string function_;
};

}  // namespace herd

template <>
struct boost::system::is_error_code_enum<herd::errc> : std::true_type {};
