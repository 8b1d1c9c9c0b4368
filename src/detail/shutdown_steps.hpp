// The orderly stop's decisions (herd/shutdown.hpp), without a signal or a timer: which signal
// starts it, when a second one forces it, what the deadline does, and the exit code.
#pragma once

#include <optional>

namespace herd::detail {

class shutdown_steps {
 public:
  enum class state { running, draining, forced, done };
  enum class action {
    none,
    start_draining,  // run the registered stops, start the deadline
    force,           // stop everything at once (stop policies' immediate end), end the loop
    finish,          // the drain is over: end the loop
  };

  /// A signal arrived (or a stop was asked for: signo 0).
  action on_signal(int signo) noexcept;
  /// The registered stops have all completed.
  action on_drained() noexcept;
  /// The drain deadline passed.
  action on_deadline() noexcept;

  state current() const noexcept { return state_; }
  /// 0 after an orderly stop (or none yet); 128 + the signal when a stop was forced (by a second
  /// signal, that one; by the deadline, the one that began the stop; 1 if none did).
  int exit_code() const noexcept { return exit_code_; }
  /// The signal that began the stop (0: asked for, or none).
  int first_signal() const noexcept { return first_signal_; }

 private:
  state state_ = state::running;
  int first_signal_ = 0;
  int exit_code_ = 0;
};

}  // namespace herd::detail
