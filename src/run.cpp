#include <herd/error.hpp>
#include <herd/run.hpp>

#include "detail/descriptors.hpp"
#include "detail/fork_lock.hpp"
#include "detail/post_completion.hpp"
#include "detail/program_process.hpp"
#include "detail/unique_fd.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace herd {

exit_status run_pipeline_result::status() const noexcept {
  for (auto it = statuses.rbegin(); it != statuses.rend(); ++it)
    if (!it->success()) return *it;
  return statuses.empty() ? exit_status() : statuses.back();
}

namespace detail {
namespace {

using pipeline_handler = asio::any_completion_handler<void(error_code, run_pipeline_result)>;

// Runs one or more stages connected stdout→stdin, feeding and draining them on a strand of
// its own (its reads, writes, waits and timers complete concurrently), then completes once.
class run_operation : public std::enable_shared_from_this<run_operation> {
 public:
  run_operation(const asio::any_io_executor& ex, const run_options& options, pipeline_handler handler)
      : strand_(asio::make_strand(ex)),
        options_(options),
        handler_(std::move(handler)),
        handler_work_(asio::prefer(asio::get_associated_executor(handler_, ex), asio::execution::outstanding_work.tracked)),
        deadline_(strand_),
        drain_deadline_(strand_) {}

  const asio::strand<asio::any_io_executor>& strand() const noexcept { return strand_; }

  // In the initiating call, before start(): a cancellation is then queued behind start().
  void connect_cancellation() {
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) {
      slot.assign([weak = weak_from_this()](asio::cancellation_type) {
        if (auto self = weak.lock())
          asio::post(self->strand_, [self] { self->stop_all(exit_reason::cancelled); });
      });
    }
  }

  // Runs on the strand.
  void start(const std::vector<command>& stages) {
    const std::size_t count = stages.size();
    result_.statuses.resize(count);
    result_.std_err.resize(count);
    children_.resize(count);

    if (count == 0) {
      error_ = errc::invalid_argument;
      result_.description = "herd: a pipeline needs at least one command";
      return finish_soon();
    }

    // The pipes between stages are made and closed under the fork lock (each launch takes it
    // again): a function child forked meanwhile on another thread would keep a copy of one.
    fork_guard guard;
    unique_fd previous_read;  // the read end of the pipe from the previous stage
    for (std::size_t i = 0; i < count; ++i) {
      command stage = stages[i];
      const bool last = i + 1 == count;
      unique_fd next_read, next_write;
      if (stage.std_in().type() == stdio::kind::unset)
        stage.std_in(previous_read ? stdio::fd(previous_read.get()) : stdio::null());
      const auto out_kind = stage.std_out().type();
      if (out_kind == stdio::kind::unset || (!last && out_kind == stdio::kind::pipe)) {
        if (last) {
          stage.std_out(stdio::pipe());
        } else if (!make_pipe(next_read, next_write)) {
          fail_stage(i, errc::spawn_failed, errno, "herd: cannot create a pipe between stages");
          break;
        } else {
          stage.std_out(stdio::fd(next_write.get()));
        }
      }
      if (stage.std_err().type() == stdio::kind::unset) stage.std_err(stdio::pipe());

      start_result started;
      try {
        started = launch_program(strand_, stage);
      } catch (const std::exception& e) {
        started.error = errc::spawn_failed;
        started.message = "herd: cannot start '" + stage.to_string() + "': " + e.what();
      }
      next_write.reset();
      previous_read = std::move(next_read);
      if (started.error) {
        fail_stage(i, started.error, started.system_error, std::move(started.message));
        break;
      }
      children_[i] = std::move(started.child);
      watch_stage(i, last);
    }
    previous_read.reset();

    if (error_) stop_all(exit_reason::stopped);
    if (options_.timeout && !error_) {
      deadline_.async_wait(*options_.timeout, [self = shared_from_this()](error_code ec) {
        if (!ec) self->stop_all(exit_reason::timed_out);
      });
    }
    if (pending_ == 0) finish_soon();
  }

 private:
  static bool make_pipe(unique_fd& read_end, unique_fd& write_end) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    read_end.reset(move_above_stdio(fds[0]));
    write_end.reset(move_above_stdio(fds[1]));
    return read_end && write_end;
  }

  void fail_stage(std::size_t index, error_code ec, int system_error, std::string message) {
    error_ = ec;
    result_.description = std::move(message);
    for (std::size_t i = index; i < result_.statuses.size(); ++i)
      result_.statuses[i] = exit_status::spawn_failure(system_error);
  }

  void watch_stage(std::size_t index, bool last) {
    auto& child = *children_[index];
    ++pending_;
    child.wait([self = shared_from_this(), index](error_code, exit_status status) {
      self->result_.statuses[index] = status;
      self->stage_done();
    });
    if (child.out && last) capture(*child.out, result_.std_out);
    if (child.err) capture(*child.err, result_.std_err[index]);
  }

  void capture(pipe_reader& reader, std::string& into) {
    ++pending_;
    ++readers_open_;
    readers_.push_back(&reader);
    reader.async_read_all([self = shared_from_this(), &into](error_code ec, std::string data) {
      into = std::move(data);
      // After the drain deadline the pipes are closed on purpose: what was read is the result.
      if (ec && !self->drain_expired_ && !self->read_error_) self->read_error_ = ec;
      --self->readers_open_;
      self->stage_done();
    });
  }

  void stage_done() {
    if (--pending_ == 0) return finish();
    // Every stage has ended but a pipe is still open: a descendant outside the process group
    // holds it. Give it the grace period, then keep what was read.
    if (pending_ == readers_open_ && !draining_) {
      draining_ = true;
      drain_deadline_.async_wait(longest_grace(), [self = shared_from_this()](error_code ec) {
        if (ec) return;
        self->drain_expired_ = true;
        // Closing (not cancelling) also stops a read loop that keeps finding data.
        for (pipe_reader* reader : self->readers_) reader->close();
      });
    }
  }

  std::chrono::milliseconds longest_grace() const {
    std::chrono::milliseconds grace(0);
    for (const auto& child : children_)
      if (child) grace = std::max(grace, child->policy.grace);
    return grace;
  }

  void stop_all(exit_reason reason) {
    if (finished_) return;
    if (stop_reason_ == exit_reason::normal) stop_reason_ = reason;
    for (auto& child : children_)
      if (child) child->begin_stop(reason);
  }

  void finish_soon() {
    asio::post(strand_, [self = shared_from_this()] { self->finish(); });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    deadline_.cancel();
    drain_deadline_.cancel();
    // The cancellation handler stays in the caller's slot (clearing it from this strand could
    // race with an emit on the caller's executor); it holds only a weak reference.

    error_code ec = error_;
    if (!ec) {
      if (stop_reason_ == exit_reason::timed_out)
        ec = errc::timed_out;
      else if (stop_reason_ == exit_reason::cancelled)
        ec = asio::error::operation_aborted;
      else if (read_error_)
        ec = read_error_;
      else if (options_.check && !result_.success())
        ec = result_.status().signaled() ? errc::child_killed : errc::child_exited;
    }
    if (!error_) {
      std::string description;
      for (std::size_t i = 0; i < children_.size(); ++i) {
        if (i > 0) description += " | ";
        description += children_[i]->describe() + " " + result_.statuses[i].to_string();
      }
      result_.description = std::move(description);
    }
    children_.clear();
    readers_.clear();
    post_completion(strand_, std::move(handler_), ec, std::move(result_));
  }

  asio::strand<asio::any_io_executor> strand_;
  run_options options_;
  pipeline_handler handler_;
  asio::any_completion_executor handler_work_;  // keeps the handler's executor busy until it is called
  timer deadline_;
  timer drain_deadline_;
  std::vector<std::shared_ptr<program_process>> children_;
  std::vector<pipe_reader*> readers_;
  run_pipeline_result result_;
  error_code error_;
  error_code read_error_;
  exit_reason stop_reason_ = exit_reason::normal;
  std::size_t pending_ = 0;
  std::size_t readers_open_ = 0;
  bool draining_ = false;
  bool drain_expired_ = false;
  bool finished_ = false;
};

}  // namespace

void async_run_pipeline_erased(const asio::any_io_executor& ex, const std::vector<command>& stages,
                               const run_options& options, pipeline_handler handler) {
  auto operation = std::make_shared<run_operation>(ex, options, std::move(handler));
  operation->connect_cancellation();
  asio::dispatch(operation->strand(), [operation, stages] { operation->start(stages); });
}

void async_run_erased(const asio::any_io_executor& ex, const command& cmd, const run_options& options,
                      asio::any_completion_handler<void(error_code, run_result)> handler) {
  // The pipeline machinery with one stage; the handler keeps its own executor and slot.
  auto slot = asio::get_associated_cancellation_slot(handler);
  auto handler_executor = asio::get_associated_executor(handler, ex);
  pipeline_handler single = asio::bind_cancellation_slot(
      slot, asio::bind_executor(handler_executor, [handler = std::move(handler)](error_code ec, run_pipeline_result r) mutable {
        run_result single_result;
        single_result.status = r.statuses.empty() ? exit_status() : r.statuses.front();
        single_result.std_out = std::move(r.std_out);
        single_result.std_err = r.std_err.empty() ? std::string() : std::move(r.std_err.front());
        single_result.description = std::move(r.description);
        std::move(handler)(ec, std::move(single_result));
      }));
  async_run_pipeline_erased(ex, {cmd}, options, std::move(single));
}

}  // namespace detail
}  // namespace herd
