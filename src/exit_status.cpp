#include <herd/exit_status.hpp>

#include <cstring>
#include <signal.h>
#include <sys/wait.h>

namespace herd {

const char* to_string(exit_reason reason) noexcept {
  switch (reason) {
    case exit_reason::normal: return "normal";
    case exit_reason::stopped: return "stopped";
    case exit_reason::timed_out: return "timed out";
    case exit_reason::cancelled: return "cancelled";
    case exit_reason::parent_stopping: return "parent stopping";
    case exit_reason::spawn_failed: return "spawn failed";
  }
  return "unknown";
}

exit_status exit_status::exited(int code, exit_reason reason) noexcept {
  exit_status s;
  s.kind_ = kind::exited;
  s.value_ = code;
  s.reason_ = reason;
  return s;
}

exit_status exit_status::signaled(int signo, bool core_dumped, exit_reason reason) noexcept {
  exit_status s;
  s.kind_ = kind::signaled;
  s.value_ = signo;
  s.core_dumped_ = core_dumped;
  s.reason_ = reason;
  return s;
}

exit_status exit_status::spawn_failure(int error) noexcept {
  exit_status s;
  s.kind_ = kind::not_started;
  s.value_ = error;
  s.reason_ = exit_reason::spawn_failed;
  return s;
}

exit_status exit_status::from_siginfo(int child_code, int child_status, exit_reason reason) noexcept {
  switch (child_code) {
    case CLD_EXITED: return exited(child_status, reason);
    case CLD_DUMPED: return signaled(child_status, true, reason);
    default: return signaled(child_status, false, reason);
  }
}

exit_status exit_status::with_reason(exit_reason reason) const noexcept {
  exit_status s = *this;
  if (s.kind_ != kind::not_started) s.reason_ = reason;
  return s;
}

std::string exit_status::to_string() const {
  std::string text;
  switch (kind_) {
    case kind::running: return "still running";
    case kind::not_started:
      return std::string("never started: ") + std::strerror(value_);
    case kind::exited:
      text = "exited with code " + std::to_string(value_);
      break;
    case kind::signaled: {
      text = "killed by signal " + std::to_string(value_);
      if (const char* abbrev = sigabbrev_np(value_)) text += std::string(" (SIG") + abbrev + ")";
      if (core_dumped_) text += ", core dumped";
      break;
    }
  }
  if (reason_ == exit_reason::stopped)
    text += ", stopped by herd";
  else if (reason_ != exit_reason::normal)
    text += std::string(", stopped by herd: ") + herd::to_string(reason_);
  return text;
}

}  // namespace herd
