#include "process_core.hpp"

#include "descriptors.hpp"
#include "fork_lock.hpp"
#include "post_completion.hpp"
#include "reap.hpp"

#include <herd/error.hpp>

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

namespace herd::detail {
namespace {

// Waits until `fd` or `extra` (if >= 0) is readable, or `wait_ms` passed (-1: forever).
// Returns whether `extra` is readable.
bool wait_readable(int fd, int extra, int wait_ms) noexcept {
  pollfd fds[2] = {{fd, POLLIN, 0}, {extra, POLLIN, 0}};
  while (::poll(fds, extra >= 0 ? 2 : 1, wait_ms) < 0 && errno == EINTR) {
  }
  return extra >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace

process_core::process_core(const asio::any_io_executor& ex, std::string child_name, int child_pid,
                           unique_fd& child_pidfd, const stop_policy& stop, bool keep)
    : process_core(ex, std::move(child_name), stop, keep) {
  attach(child_pid, child_pidfd);
}

process_core::process_core(const asio::any_io_executor& ex, std::string child_name, const stop_policy& stop, bool keep)
    : executor(ex),
      name(std::move(child_name)),
      pidfd(ex),
      policy(stop),
      keep_descendants(keep),
      grace_timer_(ex),
      retry_timer_(ex) {}

void process_core::attach(int child_pid, unique_fd& child_pidfd) {
  pidfd.assign(child_pidfd.get());  // may throw: then the caller still owns the pidfd
  watched_fd_ = child_pidfd.release();
  pid = child_pid;
}

process_core::~process_core() {
  if (released_ || !pidfd.is_open()) return;
  if (!status) {
    signal_group(SIGKILL);
    reap(pid, pidfd.native_handle(), true, keep_descendants, exit_reason::stopped);
  }
  close_pidfd();
}

void process_core::close_pidfd() noexcept {
  fork_guard guard;  // out of the fork exclusions and closed in one step
  error_code ignored;
  if (pidfd.is_open()) include_in_forks(pidfd.native_handle());
  pidfd.close(ignored);
  watched_fd_ = -1;
}

std::string process_core::describe() const { return "'" + name + "' (pid " + std::to_string(pid) + ")"; }

void process_core::signal_group(int signo) noexcept {
  if (status || released_ || !pidfd.is_open()) return;
  detail::signal_group(pid, pidfd.native_handle(), signo);
}

bool process_core::try_reap() {
  if (status || released_) return true;
  if (auto ended = reap(pid, pidfd.native_handle(), false, keep_descendants,
                        stopping_ ? stop_reason_ : exit_reason::normal)) {
    reaped(*ended);
    return true;
  }
  return false;
}

void process_core::reaped(exit_status final_status) {
  status = final_status;
  grace_timer_.cancel();
  retry_timer_.cancel();
  close_pidfd();  // a pending watch completes and finds the status
  on_reaped();
}

bool process_core::join_blocking(std::optional<std::chrono::milliseconds> timeout) {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (timeout) deadline = std::chrono::steady_clock::now() + *timeout;
  while (!try_reap()) {
    const int wait_ms = poll_timeout_until(deadline);
    if (wait_ms == 0) return false;
    // The pidfd is readable once the child has ended; a spurious wake-up just loops.
    if (wait_readable(pidfd.native_handle(), extra_poll_fd(), wait_ms)) on_extra_readable();
  }
  complete_waiters();
  return true;
}

void process_core::finish_at_exit(bool stop) noexcept {
  // The io_context may be gone by now (a server's main returns after its loop was stopped):
  // nothing of Asio's is touched here, only the pidfd's number.
  if (status || released_ || watched_fd_ < 0) return;
  const int fd = watched_fd_;
  status = stop ? stop_and_reap(pid, fd, policy, exit_reason::parent_stopping)
                : *reap(pid, fd, true, keep_descendants, exit_reason::normal);
}

int process_core::release_pidfd() noexcept {
  if (status || released_ || !pidfd.is_open()) return -1;
  released_ = true;
  retry_timer_.cancel();
  grace_timer_.cancel();
  watched_fd_ = -1;
  return pidfd.release();
}

void process_core::wait(wait_handler handler) {
  if (released_ && !status)
    return post_completion(executor, std::move(handler), error_code(errc::not_running), exit_status());
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
    if (self->released_) return;
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
  if (policy.close_stdin) close_stdin();
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
