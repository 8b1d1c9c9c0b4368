/// @file herd/supervision.hpp
/// The policies of a supervisor (herd/supervisor.hpp), apart: Erlang/OTP's restart policies and
/// strategies, the restart intensity and the backoff between attempts, and what a supervisor
/// reports as it works. Light on purpose: no Asio, no process handle.
#pragma once

#include <herd/detail/chrono.hpp>
#include <herd/exit_status.hpp>

#include <cstddef>
#include <optional>
#include <string>

namespace herd {

/// When a child that ended is started again (OTP's restart types).
enum class restart_policy {
  permanent,  ///< always
  transient,  ///< only after an abnormal end: a non-zero exit, a signal, a missed heartbeat
  temporary,  ///< never
};

/// Which children are restarted when one ends and must be restarted (OTP's strategies).
enum class supervision_strategy {
  one_for_one,   ///< that child alone
  one_for_all,   ///< all of them: the others are stopped (in reverse order), then all started in order
  rest_for_one,  ///< that child and those started after it, stopped in reverse order, started in order
};

/// At most `max_restarts` restarts within `period`: one more and the supervisor gives up (stops
/// every child and fails with `errc::restart_intensity`). OTP's intensity and period.
struct restart_intensity {
  std::size_t max_restarts = 3;
  std::chrono::milliseconds period = std::chrono::seconds(5);
};

/// The wait before restarting a child that keeps ending: none the first time, then `initial`,
/// doubling up to `maximum`, each spread by ±`jitter` (a fraction) so that children failing
/// together do not come back together. A child that ran `reset_after` or longer before it ended
/// starts again from no wait.
struct restart_backoff {
  std::chrono::milliseconds initial = std::chrono::milliseconds(100);
  std::chrono::milliseconds maximum = std::chrono::seconds(5);
  double jitter = 0.2;
  std::chrono::milliseconds reset_after = std::chrono::seconds(5);
};

/// Where a supervised child is.
enum class child_state {
  idle,      ///< not started yet, or stopped by its supervisor
  starting,  ///< running, waiting to say it is ready (a spec that asks for readiness)
  running,
  stopping,  ///< being stopped by its stop policy
  waiting,   ///< ended; to be restarted after its backoff
  done,      ///< ended and not to be restarted (its restart policy)
};

/// What `supervisor::which_children()` tells of one child.
struct supervised_child_info {
  std::string id;
  child_state state = child_state::idle;
  int pid = 0;                           ///< 0 when not running (and for a nested supervisor)
  std::size_t restarts = 0;              ///< how many times it was started again
  std::optional<exit_status> last_exit;  ///< how its last run ended
};

/// Something a supervisor did or saw, for logs and metrics (`supervisor_options::on_event`).
struct supervisor_event {
  enum class kind {
    started,           ///< a child runs (and said it is ready, if its spec asks)
    exited,            ///< a child ended: `status` and `reason` say how
    restarting,        ///< a child is started again after `delay`
    heartbeat_missed,  ///< a child sent no heartbeat for longer than its spec allows (or was not
                       ///< ready in time): it is stopped and counts as an abnormal end
    gave_up,           ///< too many restarts: `child` kept ending; every child is being stopped
    stopped,           ///< the supervisor is over: every child has ended
  };
  kind what = kind::started;
  std::string supervisor;  ///< the supervisor's name
  std::string child;       ///< the child's id (empty for `stopped`)
  int pid = 0;
  std::optional<exit_status> status;
  std::string reason;  ///< how it ended, in words; why it gave up
  std::chrono::milliseconds delay{0};
  std::size_t restarts = 0;  ///< the child's restarts so far
};

/// "child-name" and state as a word: "running", "waiting"…
const char* to_string(child_state state) noexcept;
/// One line: "restarting service (restart 2) in 200 ms", "exited service (pid 12): killed by
/// signal 9 (SIGKILL)"…
std::string to_string(const supervisor_event& event);

}  // namespace herd
