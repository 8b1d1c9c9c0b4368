#include "shutdown_steps.hpp"

namespace herd::detail {
namespace {
// The shell's convention for a death by a signal; 1 when the stop was asked for without one.
int forced_code(int signo) noexcept { return signo != 0 ? 128 + signo : 1; }
}  // namespace

shutdown_steps::action shutdown_steps::on_signal(int signo) noexcept {
  switch (state_) {
    case state::running:
      state_ = state::draining;
      first_signal_ = signo;
      return action::start_draining;
    case state::draining:
      // A second signal: the user does not want to wait (Ctrl-C twice).
      state_ = state::forced;
      exit_code_ = forced_code(signo != 0 ? signo : first_signal_);
      return action::force;
    default:
      return action::none;
  }
}

shutdown_steps::action shutdown_steps::on_drained() noexcept {
  if (state_ != state::draining) return action::none;
  state_ = state::done;
  return action::finish;
}

shutdown_steps::action shutdown_steps::on_deadline() noexcept {
  if (state_ != state::draining) return action::none;
  state_ = state::forced;
  exit_code_ = forced_code(first_signal_);
  return action::force;
}

}  // namespace herd::detail
