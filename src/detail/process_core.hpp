// A running child process as herd watches it: its pidfd on the event loop, the waiters, the
// stop policy, reaping; the lifecycle only. A program's pipes are in program_process, a function
// child's outcome channel in function_process.
#pragma once

#include <herd/exit_status.hpp>
#include <herd/stop_policy.hpp>
#include <herd/detail/timer.hpp>

#include "unique_fd.hpp"

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace herd::detail {

struct process_core : std::enable_shared_from_this<process_core> {
  using wait_handler = asio::any_completion_handler<void(error_code, exit_status)>;

  /// Takes `pidfd` from its owner only once nothing can throw any more.
  process_core(const asio::any_io_executor& ex, std::string name, int pid, unique_fd& pidfd, const stop_policy& policy,
               bool keep_descendants);
  /// Not yet attached to a process (a fork prepares its state before forking: allocations made
  /// after fork() would copy pages the child still shares).
  process_core(const asio::any_io_executor& ex, std::string name, const stop_policy& policy, bool keep_descendants);
  /// Watches `pid` from now on. Takes `pidfd` from its owner only if this does not throw. The
  /// pidfd is a fork exclusion (fork_lock.hpp), registered by its creator under the fork lock; this
  /// takes it out of the list when it closes it (release_pidfd() hands that on).
  void attach(int pid, unique_fd& pidfd);
  process_core(const process_core&) = delete;
  process_core& operator=(const process_core&) = delete;
  /// Not reaped yet (the executor stopped running): SIGKILL and reap now, never a zombie.
  virtual ~process_core();

  /// Completes `handler` with the final status once the child has ended.
  void wait(wait_handler handler);
  /// Runs the stop policy; the first reason given is the one reported.
  void begin_stop(exit_reason reason);
  /// Sends `signo` to the child and its process group, until it is reaped.
  void signal_group(int signo) noexcept;
  /// Reaps the child if it has ended (without blocking); true once it has.
  bool try_reap();
  /// Blocks until the child has ended (or `timeout` passed; forever without one) and reaps it,
  /// for code without a running event loop. Waiters are completed through the executor.
  bool join_blocking(std::optional<std::chrono::milliseconds> timeout);
  /// At the parent's exit, when executors may be gone: stops (stop policy) or joins the child
  /// with plain system calls and records its status; no timer, no post.
  void finish_at_exit(bool stop) noexcept;
  /// Gives up the pidfd (returned, or -1 if the child has ended): herd's detach(). Waits then
  /// complete with errc::not_running; the destructor leaves the child alone.
  int release_pidfd() noexcept;
  /// "'sleep 100' (pid 42)"
  std::string describe() const;

  asio::any_io_executor executor;
  std::string name;
  int pid = 0;
  asio::posix::stream_descriptor pidfd;
  stop_policy policy;
  bool keep_descendants;
  std::optional<exit_status> status;

 protected:
  /// The stop policy's first step when it says close_stdin: closes the child's stdin if this
  /// process holds its write end (a program's stdin pipe).
  virtual void close_stdin() noexcept {}
  /// Called once, right after the child was reaped.
  virtual void on_reaped() {}
  /// A descriptor join_blocking() also watches while it waits (a function child's outcome
  /// channel, which must be read or the child blocks writing it), and what to do when ready.
  virtual int extra_poll_fd() { return -1; }
  virtual void on_extra_readable() {}

 private:
  void watch();
  void close_pidfd() noexcept;
  int watched_fd_ = -1;  // pidfd's number, for the exit handler, which must not touch Asio
  void complete_waiters();
  void reaped(exit_status final_status);

  struct waiter {
    std::uint64_t id;
    wait_handler handler;
    asio::any_completion_executor work;  // outstanding work on the handler's executor
  };

  bool stopping_ = false;
  bool released_ = false;
  exit_reason stop_reason_ = exit_reason::normal;
  timer grace_timer_;
  timer retry_timer_;
  bool watching_ = false;
  std::uint64_t next_waiter_id_ = 0;
  std::list<waiter> waiters_;
};

}  // namespace herd::detail
