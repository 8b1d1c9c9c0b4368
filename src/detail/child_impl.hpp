// The state behind herd::child, shared with async_run and async_run_pipeline.
#pragma once

#include <herd/child.hpp>
#include <herd/detail/timer.hpp>

#include "unique_fd.hpp"

#include <boost/asio/any_completion_executor.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace herd::detail {

struct start_result;

struct child_impl : std::enable_shared_from_this<child_impl> {
  using wait_handler = asio::any_completion_handler<void(error_code, exit_status)>;

  /// Starts `cmd` on `ex`. Streams the command leaves unset are inherited.
  static start_result start(const asio::any_io_executor& ex, const command& cmd);

  /// Takes `pidfd` from its owner only once nothing can throw any more.
  child_impl(const asio::any_io_executor& ex, std::string name, int pid, unique_fd& pidfd, const command& cmd);
  child_impl(const child_impl&) = delete;
  child_impl& operator=(const child_impl&) = delete;
  /// Not reaped yet (the executor stopped running): SIGKILL and reap now, never a zombie.
  ~child_impl();

  /// Completes `handler` with the final status once the child has ended.
  void wait(wait_handler handler);
  /// Runs the stop policy; the first reason given is the one reported.
  void begin_stop(exit_reason reason);
  /// Sends `signo` to the child and its process group, until it is reaped.
  void signal_group(int signo) noexcept;
  /// Reaps the child if it has ended (without blocking); true once it has.
  bool try_reap();
  /// "'sleep 100' (pid 42)"
  std::string describe() const;

  asio::any_io_executor executor;
  std::string name;
  int pid;
  asio::posix::stream_descriptor pidfd;
  std::optional<pipe_writer> in;
  std::optional<pipe_reader> out;
  std::optional<pipe_reader> err;
  stop_policy policy;
  bool keep_descendants;
  std::optional<exit_status> status;

 private:
  void watch();
  void complete_waiters();

  struct waiter {
    std::uint64_t id;
    wait_handler handler;
    asio::any_completion_executor work;  // outstanding work on the handler's executor
  };

  bool stopping_ = false;
  exit_reason stop_reason_ = exit_reason::normal;
  timer grace_timer_;
  timer retry_timer_;
  bool watching_ = false;
  std::uint64_t next_waiter_id_ = 0;
  std::list<waiter> waiters_;
};

struct start_result {
  std::shared_ptr<child_impl> child;
  error_code error;
  int system_error = 0;  // errno of the failed step
  std::string message;   // names the command and what failed
};

}  // namespace herd::detail
