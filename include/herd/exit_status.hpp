/// @file herd/exit_status.hpp
/// How a child process ended, and why.
#pragma once

#include <cstdint>
#include <string>

namespace herd {

/// Why a child ended: on its own, or stopped by herd (and for what).
enum class exit_reason : std::uint8_t {
  normal,           ///< the child ended on its own (or was signalled by someone other than herd)
  stopped,          ///< herd stopped it because terminate() was called or its owner was destroyed
  timed_out,        ///< herd stopped it because its timeout expired
  cancelled,        ///< herd stopped it because the awaiting operation was cancelled
  parent_stopping,  ///< herd stopped it because the parent is exiting (daemons)
  spawn_failed,     ///< it never ran: the launch failed (see spawn_errno())
};

/// Describes an exit_reason in a few words ("timed out", "cancelled", …).
const char* to_string(exit_reason reason) noexcept;

/// The final status of a child process: exited with a code, or killed by a signal, plus the
/// reason herd knows for it. A default-constructed status means "not ended (yet)".
class exit_status {
 public:
  exit_status() = default;

  /// A child that called `exit(code)`.
  static exit_status exited(int code, exit_reason reason = exit_reason::normal) noexcept;
  /// A child killed by signal `signo`.
  static exit_status signaled(int signo, bool core_dumped = false,
                              exit_reason reason = exit_reason::normal) noexcept;
  /// A child that could not be started: `error` is the errno of the failing step.
  static exit_status spawn_failure(int error) noexcept;
  /// From the `si_code` and `si_status` that waitid() reports.
  static exit_status from_siginfo(int child_code, int child_status,
                                  exit_reason reason = exit_reason::normal) noexcept;

  /// True once the child has ended (or failed to start).
  bool has_ended() const noexcept { return kind_ != kind::running; }
  /// True if the child called exit(); code() is then valid.
  bool exited() const noexcept { return kind_ == kind::exited; }
  /// True if a signal killed the child; signal() is then valid.
  bool signaled() const noexcept { return kind_ == kind::signaled; }
  /// True if the child exited with code 0.
  bool success() const noexcept { return exited() && value_ == 0; }

  /// The exit code (valid if exited()).
  int code() const noexcept { return kind_ == kind::exited ? value_ : -1; }
  /// The signal that killed the child (valid if signaled()).
  int signal() const noexcept { return kind_ == kind::signaled ? value_ : 0; }
  bool core_dumped() const noexcept { return core_dumped_; }
  exit_reason reason() const noexcept { return reason_; }
  /// The errno of the failed launch step, for reason() == spawn_failed.
  int spawn_errno() const noexcept { return kind_ == kind::not_started ? value_ : 0; }

  /// Python's `Process.exitcode`: the code, or minus the signal number.
  int python_exitcode() const noexcept { return signaled() ? -value_ : code(); }

  /// A copy with another reason (herd records why it stopped a child).
  exit_status with_reason(exit_reason reason) const noexcept;

  /// "exited with code 3", "killed by signal 9 (SIGKILL), stopped by herd: timed out", …
  std::string to_string() const;

  friend bool operator==(const exit_status&, const exit_status&) = default;

 private:
  enum class kind : std::uint8_t { running, exited, signaled, not_started };
  kind kind_ = kind::running;
  exit_reason reason_ = exit_reason::normal;
  bool core_dumped_ = false;
  int value_ = 0;
};

}  // namespace herd
