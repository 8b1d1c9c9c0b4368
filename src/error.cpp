#include <herd/error.hpp>

#include <string>

namespace herd {
namespace {

class herd_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "herd"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::program_not_found: return "program not found";
      case errc::bad_working_directory: return "working directory cannot be entered";
      case errc::bad_stdio: return "standard stream cannot be set up";
      case errc::spawn_failed: return "process could not be started";
      case errc::child_exited: return "child exited with a non-zero code";
      case errc::child_killed: return "child was killed by a signal";
      case errc::child_exception: return "child raised an exception";
      case errc::worker_died: return "worker process died with the task in flight";
      case errc::poison_task: return "task quarantined after killing workers repeatedly";
      case errc::timed_out: return "timed out";
      case errc::closed: return "closed";
      case errc::would_block: return "operation would block";
      case errc::message_too_large: return "message too large";
      case errc::bad_message: return "message cannot be decoded";
      case errc::owner_died: return "previous owner died while holding it";
      case errc::not_owner: return "caller does not own it";
      case errc::not_running: return "process is not running";
      case errc::invalid_argument: return "invalid argument";
      case errc::daemon_cannot_start_children: return "daemonic processes are not allowed to have children";
      case errc::broken_barrier: return "barrier is broken";
      case errc::initializer_failed: return "the pool's initializer failed";
      case errc::build_mismatch: return "the code belongs to another build of the program";
      case errc::stage_failed: return "a pipeline stage failed";
      case errc::restart_intensity: return "a supervised child ended too often";
    }
    return "unknown herd error " + std::to_string(value);
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const herd_category category;
  return category;
}

void detail::throw_error(error_code ec, const std::string& operation) {
  throw boost::system::system_error(ec, "herd: " + operation);
}

child_error::child_error(std::string exception_type, std::string exception_message, int pid,
                         std::string process_name, std::string function)
    : boost::system::system_error(errc::child_exception, "herd: process '" + process_name + "' (pid " +
                                                             std::to_string(pid) + ", running " + function +
                                                             ") raised " + exception_type + ": " + exception_message),
      exception_type_(std::move(exception_type)),
      exception_message_(std::move(exception_message)),
      pid_(pid),
      process_name_(std::move(process_name)),
      function_(std::move(function)) {}

}  // namespace herd
