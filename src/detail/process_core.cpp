#include "process_core.hpp"

#include "io.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace herd::detail {
namespace {

bool wait_readable(int fd, std::optional<std::chrono::milliseconds> timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  for (;;) {
    int wait_ms = -1;
    if (timeout) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<std::int64_t>(0, left.count()));
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, wait_ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

process_core::process_core(const asio::any_io_executor& ex, std::string child_name, int child_pid,
                           unique_fd& child_pidfd, const stop_policy& stop, bool keep)
    : executor(ex),
      name(std::move(child_name)),
      pid(child_pid),
      pidfd(ex),
      policy(stop),
      keep_descendants(keep),
      grace_timer_(ex),
      retry_timer_(ex) {
  // Last, so that the caller still owns the pidfd (and reaps the child) if anything throws.
  pidfd.assign(child_pidfd.get());
  child_pidfd.release();
}

process_core::~process_core() {
  if (status || !pidfd.is_open()) return;
  signal_group(SIGKILL);
  // Asio made the pidfd non-blocking, and waitid() honours that: block for this one wait.
  const int fd = pidfd.native_handle();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  siginfo_t info{};
  while (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd), &info, WEXITED | __WALL) < 0 &&
         errno == EINTR) {
  }
}

std::string process_core::describe() const { return "'" + name + "' (pid " + std::to_string(pid) + ")"; }

void process_core::signal_group(int signo) noexcept {
  if (status || !pidfd.is_open()) return;
  // Each process once: the group while the leader still leads it (its pid cannot be reused
  // before herd reaps it); a leader that left its group (setsid) by pidfd, and the group too.
  if (::getpgid(pid) != pid) send_signal_by_pidfd(pidfd.native_handle(), signo);
  ::kill(-pid, signo);
}

bool process_core::try_reap() {
  if (status) return true;
  siginfo_t info{};
  const int fd = pidfd.native_handle();
  const exit_reason reason = stopping_ ? stop_reason_ : exit_reason::normal;
  // Look first, reap second: while the leader is an unreaped zombie its pid (and so its
  // process group id) cannot be reused, so killing the group's leftovers is safe.
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) !=
      0) {
    // Someone else reaped it: SIGCHLD set to SIG_IGN (the kernel auto-reaps), or a waitpid(-1)
    // elsewhere. Its group may be gone and its pid reused, so no group kill now. Linux 6.15+
    // still tells the exit status to pidfd holders; older kernels lose it.
    int wait_status = 0;
    if (!exit_status_from_pidfd(fd, wait_status))
      reaped(exit_status::exited(255, reason));
    else if (WIFSIGNALED(wait_status))
      reaped(exit_status::signaled(WTERMSIG(wait_status), WCOREDUMP(wait_status), reason));
    else
      reaped(exit_status::exited(WEXITSTATUS(wait_status), reason));
    return true;
  }
  if (info.si_pid == 0) return false;
  if (!keep_descendants) ::kill(-pid, SIGKILL);
  siginfo_t ignored{};
  ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd), &ignored, WEXITED | WNOHANG | __WALL);
  reaped(exit_status::from_siginfo(info.si_code, info.si_status, reason));
  return true;
}

void process_core::reaped(exit_status final_status) {
  status = final_status;
  grace_timer_.cancel();
  retry_timer_.cancel();
  error_code ignored;
  pidfd.close(ignored);  // a pending watch completes and finds the status
  on_reaped();
}

bool process_core::join_blocking(std::optional<std::chrono::milliseconds> timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  while (!try_reap()) {
    std::optional<std::chrono::milliseconds> left;
    if (timeout) {
      left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left->count() <= 0) return false;
    }
    // Readable once the child has ended; a spurious wake-up just loops.
    if (!wait_readable(pidfd.native_handle(), left) && timeout && std::chrono::steady_clock::now() >= deadline)
      return false;
  }
  complete_waiters();
  return true;
}

void process_core::stop_blocking(exit_reason reason) {
  if (status) return;
  if (!stopping_) {
    stopping_ = true;
    stop_reason_ = reason;
    if (policy.close_stdin && in) in->close();
    signal_group(policy.signal);
  }
  if (policy.signal != SIGKILL && join_blocking(policy.grace)) return;
  signal_group(SIGKILL);
  join_blocking(std::nullopt);
}

void process_core::wait(wait_handler handler) {
  if (status || try_reap()) return post_completion(executor, std::move(handler), error_code(), *status);
  auto slot = asio::get_associated_cancellation_slot(handler);
  const std::uint64_t id = next_waiter_id_++;
  // Keep the handler's own executor busy until it is called (it may belong to another context).
  auto work = asio::prefer(asio::get_associated_executor(handler, executor), asio::execution::outstanding_work.tracked);
  waiters_.push_back(waiter{id, std::move(handler), std::move(work)});
  if (slot.is_connected()) {
    // Cancelling a wait only stops waiting: the child is untouched. The slot may be emitted
    // from another thread: touch the waiters on the child's executor only.
    slot.assign([weak = weak_from_this(), id, ex = executor](asio::cancellation_type) {
      asio::dispatch(ex, [weak, id] {
        auto self = weak.lock();
        if (!self) return;
        auto it = std::find_if(self->waiters_.begin(), self->waiters_.end(), [id](auto& w) { return w.id == id; });
        if (it == self->waiters_.end()) return;
        wait_handler cancelled = std::move(it->handler);
        self->waiters_.erase(it);
        post_completion(self->executor, std::move(cancelled), error_code(asio::error::operation_aborted), exit_status());
      });
    });
  }
  watch();
}

void process_core::watch() {
  if (watching_ || status) return;
  watching_ = true;
  pidfd.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](error_code) {
    self->watching_ = false;
    if (self->try_reap()) return self->complete_waiters();
    // Readable but not reapable yet (a tracer holds the zombie), or the wait failed: look
    // again shortly rather than spin or give up.
    self->retry_timer_.async_wait(std::chrono::milliseconds(10), [self](error_code ec) {
      if (!ec) self->watch();
    });
  });
}

void process_core::complete_waiters() {
  auto waiting = std::move(waiters_);
  waiters_.clear();
  // Their cancellation handlers stay in their slots until reassigned; they find no waiter.
  for (auto& w : waiting) post_completion(executor, std::move(w.handler), error_code(), *status);
}

void process_core::begin_stop(exit_reason reason) {
  if (status || stopping_) return;
  stopping_ = true;
  stop_reason_ = reason;
  if (policy.close_stdin && in) in->close();
  signal_group(policy.signal);
  if (policy.signal != SIGKILL) {
    if (policy.grace.count() <= 0) {
      signal_group(SIGKILL);
    } else {
      grace_timer_.async_wait(policy.grace, [self = shared_from_this()](error_code ec) {
        if (!ec) self->signal_group(SIGKILL);
      });
    }
  }
  watch();
}

}  // namespace herd::detail
