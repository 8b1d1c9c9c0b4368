#include <herd/pipe_stream.hpp>

#include <herd/error.hpp>

#include "detail/capture_buffer.hpp"
#include "detail/descriptors.hpp"
#include "detail/fork_lock.hpp"
#include "detail/post_completion.hpp"
#include "detail/system_code.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

namespace herd {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;
// A pipe that a read finds full belongs to a fast writer: give it this much room, so each
// wake-up moves more bytes (2.6x the throughput here, shared/research/limits.md). Pipes that
// never fill keep the default and cost no extra kernel memory.
constexpr int fast_pipe_size = 1 << 20;


// Every composed operation here honours all three cancellation types, including a cancellation
// that arrives while its next step is queued (Asio records it in the state; nobody else looks).
template <typename Self>
void accept_all_cancellation(Self& op) {
  op.reset_cancellation_state(asio::enable_total_cancellation());
}

template <typename Self>
bool cancellation_requested(Self& op) {
  return op.get_cancellation_state().cancelled() != asio::cancellation_type::none;
}

template <typename State>
std::shared_ptr<State> make_state(const asio::any_io_executor& ex, int fd) {
  try {
    return std::make_shared<State>(ex, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// pipe_end: what both ends share

namespace detail {

struct pipe_state {
  pipe_state(const asio::any_io_executor& ex, int fd) : stream(ex, fd) { exclude_from_forks(fd); }
  virtual ~pipe_state() { close(); }
  // Out of the fork exclusions and closed in one step under the fork lock: a fork between the
  // two would keep a copy (a stdin write end, and the program never sees end of file).
  void close() noexcept {
    fork_guard guard;
    error_code ignored;
    if (stream.is_open()) include_in_forks(stream.native_handle());
    stream.close(ignored);
  }
  asio::posix::stream_descriptor stream;
};

pipe_end::pipe_end(std::shared_ptr<pipe_state> state) noexcept
    : state_(std::move(state)), executor_(state_->stream.get_executor()) {}
pipe_end::pipe_end(pipe_end&& other) noexcept : state_(std::move(other.state_)), executor_(other.executor_) {}

pipe_end& pipe_end::operator=(pipe_end&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
    executor_ = other.executor_;
  }
  return *this;
}

pipe_end::~pipe_end() { close(); }

pipe_end::executor_type pipe_end::get_executor() const noexcept { return executor_; }
bool pipe_end::is_open() const noexcept { return state_ && state_->stream.is_open(); }
int pipe_end::native_handle() const noexcept { return is_open() ? state_->stream.native_handle() : -1; }

void pipe_end::close() noexcept {
  if (state_) state_->close();
}

void pipe_end::cancel() noexcept {
  error_code ignored;
  if (state_) state_->stream.cancel(ignored);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// pipe_reader

namespace {

struct reader_state : detail::pipe_state {
  reader_state(const asio::any_io_executor& ex, int fd) : pipe_state(ex, fd), pipe_size(::fcntl(fd, F_GETPIPE_SZ)) {}

  int pipe_size;  // -1 if not a pipe, 0 once grown (or refused)
  // Bytes read but not yet handed out live in data[begin, end).
  std::string data;
  std::size_t begin = 0;
  std::size_t end = 0;
  bool at_eof = false;

  void note_read(std::size_t n) {
    if (pipe_size > 0 && n >= static_cast<std::size_t>(pipe_size)) {
      ::fcntl(stream.native_handle(), F_SETPIPE_SZ, fast_pipe_size);  // may be refused: then keep the default
      pipe_size = 0;
    }
  }

  std::size_t buffered() const noexcept { return end - begin; }

  bool has_line() const noexcept { return std::memchr(data.data() + begin, '\n', end - begin) != nullptr; }

  std::optional<std::string> take_line() {
    const char* first = data.data() + begin;
    const char* newline = static_cast<const char*>(std::memchr(first, '\n', end - begin));
    if (newline == nullptr) return std::nullopt;
    std::string line(first, newline);
    begin += line.size() + 1;
    compact();
    return line;
  }

  std::string take_all() {
    std::string all;
    if (begin == 0) {
      data.resize(end);
      all = std::move(data);
    } else {
      all.assign(data, begin, end - begin);
    }
    data.clear();
    begin = end = 0;
    return all;
  }

  std::size_t take_into(asio::mutable_buffer buffer) {
    const std::size_t n = std::min(buffer.size(), buffered());
    std::memcpy(buffer.data(), data.data() + begin, n);
    begin += n;
    compact();
    return n;
  }

  // Room for at least `wanted` more bytes after `end`, doubling so long streams cost O(n).
  asio::mutable_buffer prepare(std::size_t wanted) {
    compact();
    if (data.size() - end < wanted) data.resize(std::max(end + wanted, data.size() * 2));
    return asio::buffer(data.data() + end, data.size() - end);
  }

  void compact() {
    if (begin == end) {
      begin = end = 0;
    } else if (begin > 0 && begin >= data.size() / 2) {
      std::memmove(data.data(), data.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
  }
};

// A plain read (buffered bytes first) that also notes whether the pipe was full.
struct read_some_op {
  std::shared_ptr<reader_state> self;
  asio::mutable_buffer buffer;
  bool started = false;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}, std::size_t transferred = 0) {
    if (!started) {
      started = true;
      accept_all_cancellation(op);
      if (self->buffered() > 0 || buffer.size() == 0 || !self->stream.is_open()) {
        ec = !self->stream.is_open() && self->buffered() == 0 ? error_code(asio::error::bad_descriptor) : error_code();
        transferred = self->take_into(buffer);
        const auto ex = self->stream.get_executor();  // before `op` (which holds `self`) moves
        return asio::post(ex, asio::append(std::move(op), ec, transferred));
      }
      return self->stream.async_read_some(buffer, std::move(op));
    }
    self->note_read(transferred);
    op.complete(ec, transferred);
  }
};

// Reads until a whole line is buffered, then hands it out.
struct read_line_op {
  std::shared_ptr<reader_state> self;
  enum { starting, reading, ready } state = starting;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}, std::size_t transferred = 0) {
    switch (state) {
      case starting:
        accept_all_cancellation(op);
        state = reading;
        if (!self->stream.is_open() || self->at_eof || self->has_line()) {
          state = ready;
          return asio::post(self->stream.get_executor(), std::move(op));
        }
        break;
      case reading:
        self->end += transferred;
        self->note_read(transferred);
        if (ec == asio::error::eof) {
          self->at_eof = true;
          return finish(op);
        }
        if (ec) return op.complete(ec, std::string());
        break;
      case ready:
        return finish(op);
    }
    if (auto line = self->take_line()) return op.complete(error_code(), std::move(*line));
    // The partial line stays buffered for the next read.
    if (cancellation_requested(op)) return op.complete(asio::error::operation_aborted, std::string());
    self->stream.async_read_some(self->prepare(read_chunk), std::move(op));
  }

  template <typename Self>
  void finish(Self& op) {
    if (auto line = self->take_line()) return op.complete(error_code(), std::move(*line));
    if (self->buffered() > 0) return op.complete(error_code(), self->take_all());
    op.complete(self->at_eof ? error_code(asio::error::eof) : error_code(asio::error::bad_descriptor), std::string());
  }
};

// Reads to the end of the stream; what a line read had buffered comes first. On an error or a
// cancellation the data read so far is delivered with it.
struct read_all_op {
  std::shared_ptr<reader_state> self;
  detail::capture_buffer captured;
  bool started = false;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}, std::size_t transferred = 0) {
    if (!started) {
      started = true;
      accept_all_cancellation(op);
      captured = detail::capture_buffer(self->take_all());
      if (!self->stream.is_open() || self->at_eof) {
        ec = self->at_eof ? error_code(asio::error::eof) : error_code(asio::error::bad_descriptor);
        const auto ex = self->stream.get_executor();  // before `op` (which holds `self`) moves
        return asio::post(ex, asio::append(std::move(op), ec, std::size_t(0)));
      }
    } else {
      captured.commit(transferred);
      self->note_read(transferred);
      if (ec == asio::error::eof) {
        self->at_eof = true;
        return op.complete(error_code(), captured.take());
      }
      if (ec) return op.complete(ec, captured.take());
      if (cancellation_requested(op)) return op.complete(asio::error::operation_aborted, captured.take());
    }
    self->stream.async_read_some(captured.prepare(), std::move(op));
  }
};

}  // namespace

pipe_reader::pipe_reader(const executor_type& ex, int fd) : pipe_end(make_state<reader_state>(ex, fd)) {}

namespace {
std::shared_ptr<reader_state> reader(const std::shared_ptr<detail::pipe_state>& state) {
  return std::static_pointer_cast<reader_state>(state);
}
}  // namespace

namespace {
// A moved-from end has no state: its operations complete with errc::closed on the handler's
// own executor.
template <typename Handler, typename Value>
bool completed_empty(const std::shared_ptr<detail::pipe_state>& state, const asio::any_io_executor& ex, Handler& handler,
                     Value value) {
  if (state) return false;
  detail::post_completion(ex, std::move(handler), error_code(errc::closed), std::move(value));
  return true;
}
}  // namespace

void pipe_reader::read_some_impl(asio::mutable_buffer buffer,
                                 asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  if (completed_empty(state_, executor_, handler, std::size_t(0))) return;
  asio::async_compose<decltype(handler), void(error_code, std::size_t)>(read_some_op{reader(state_), buffer},
                                                                        handler, state_->stream);
}

void pipe_reader::read_line_impl(asio::any_completion_handler<void(error_code, std::string)> handler) {
  if (completed_empty(state_, executor_, handler, std::string())) return;
  asio::async_compose<decltype(handler), void(error_code, std::string)>(read_line_op{reader(state_)}, handler,
                                                                        state_->stream);
}

void pipe_reader::read_all_impl(asio::any_completion_handler<void(error_code, std::string)> handler) {
  if (completed_empty(state_, executor_, handler, std::string())) return;
  asio::async_compose<decltype(handler), void(error_code, std::string)>(
      read_all_op{reader(state_), detail::capture_buffer(), false}, handler, state_->stream);
}

// ---------------------------------------------------------------------------------------------
// pipe_writer

namespace {

struct writer_state : detail::pipe_state {
  writer_state(const asio::any_io_executor& ex, int fd) : pipe_state(ex, fd) {
    error_code ignored;
    stream.non_blocking(true, ignored);
  }
};

// Writes `data` (all of it, or just some) without ever blocking the thread or raising SIGPIPE.
struct write_op {
  std::shared_ptr<detail::pipe_state> self;
  asio::const_buffer borrowed;  // write_some: the caller's bytes
  std::string owned;            // write_all: its own copy (the op moves, so keep offsets)
  bool all;
  std::size_t written = 0;
  enum { starting, waiting, done } state = starting;
  error_code result;

  asio::const_buffer remaining() const noexcept { return (all ? asio::buffer(owned) : borrowed) + written; }

  template <typename Self>
  void operator()(Self& op, error_code ec = {}) {
    if (state == done) return op.complete(result, written);
    if (state == waiting && ec) return op.complete(ec, written);
    const bool first = state == starting;
    if (first) accept_all_cancellation(op);
    state = waiting;
    auto& stream = self->stream;
    while (stream.is_open() && remaining().size() > 0) {
      const asio::const_buffer next = remaining();
      const long n = detail::write_without_sigpipe(stream.native_handle(), next.data(), next.size());
      if (n >= 0) {
        written += static_cast<std::size_t>(n);
        if (!all) break;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (cancellation_requested(op)) {
          result = asio::error::operation_aborted;
          break;
        }
        return stream.async_wait(asio::posix::stream_descriptor::wait_write, std::move(op));
      }
      result = errno == EPIPE ? error_code(asio::error::broken_pipe) : detail::system_code(errno);
      break;
    }
    if (!stream.is_open() && !result) result = asio::error::bad_descriptor;
    if (first) {
      state = done;
      return asio::post(stream.get_executor(), std::move(op));
    }
    op.complete(result, written);
  }
};

}  // namespace

pipe_writer::pipe_writer(const executor_type& ex, int fd) : pipe_end(make_state<writer_state>(ex, fd)) {}

void pipe_writer::write_some_impl(asio::const_buffer buffer,
                                  asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  if (completed_empty(state_, executor_, handler, std::size_t(0))) return;
  asio::async_compose<decltype(handler), void(error_code, std::size_t)>(
      write_op{state_, buffer, {}, false, 0, write_op::starting, {}}, handler, state_->stream);
}

void pipe_writer::write_all_impl(std::string data,
                                 asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  if (completed_empty(state_, executor_, handler, std::size_t(0))) return;
  write_op op{state_, {}, std::move(data), true, 0, write_op::starting, {}};
  asio::async_compose<decltype(handler), void(error_code, std::size_t)>(std::move(op), handler, state_->stream);
}

}  // namespace herd
