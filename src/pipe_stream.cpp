#include <herd/pipe_stream.hpp>

#include "detail/capture_buffer.hpp"
#include "detail/io.hpp"

#include <boost/asio/compose.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>

namespace herd {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;
// A pipe that a read finds full belongs to a fast writer: give it this much room, so each
// wake-up moves more bytes (2.6x the throughput here, shared/research/limits.md). Pipes that
// never fill keep the default and cost no extra kernel memory.
constexpr int fast_pipe_size = 1 << 20;

error_code errno_code(int value) { return {value, boost::system::system_category()}; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// pipe_reader

struct pipe_reader::impl {
  impl(const executor_type& ex, int fd) : stream(ex, fd), pipe_size(::fcntl(fd, F_GETPIPE_SZ)) {}

  asio::posix::stream_descriptor stream;
  int pipe_size;  // -1 if not a pipe, 0 once grown (or refused)

  void note_read(std::size_t n) {
    if (pipe_size > 0 && n >= static_cast<std::size_t>(pipe_size)) {
      ::fcntl(stream.native_handle(), F_SETPIPE_SZ, fast_pipe_size);  // may be refused: then keep the default
      pipe_size = 0;
    }
  }
  // Bytes read but not yet handed out live in data[begin, end).
  std::string data;
  std::size_t begin = 0;
  std::size_t end = 0;
  bool at_eof = false;

  std::size_t buffered() const noexcept { return end - begin; }

  bool has_line() const noexcept {
    return std::memchr(data.data() + begin, '\n', end - begin) != nullptr;
  }

  std::optional<std::string> take_line() {
    auto first = data.begin() + static_cast<std::ptrdiff_t>(begin);
    auto last = data.begin() + static_cast<std::ptrdiff_t>(end);
    auto newline = std::find(first, last, '\n');
    if (newline == last) return std::nullopt;
    std::string line(first, newline);
    begin = static_cast<std::size_t>(newline - data.begin()) + 1;
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

namespace {

// Reads until a whole line is buffered, then hands it out.
struct read_line_op {
  pipe_reader::impl* self;
  enum { starting, reading, ready } state = starting;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}, std::size_t transferred = 0) {
    switch (state) {
      case starting:
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
    self->stream.async_read_some(self->prepare(read_chunk), std::move(op));
  }

  template <typename Self>
  void finish(Self& op) {
    if (auto line = self->take_line()) return op.complete(error_code(), std::move(*line));
    if (self->buffered() > 0) return op.complete(error_code(), self->take_all());
    op.complete(self->at_eof ? error_code(asio::error::eof) : error_code(asio::error::bad_descriptor), std::string());
  }
};

// Reads to the end of the stream; what a line read had buffered comes first.
struct read_all_op {
  pipe_reader::impl* self;
  detail::capture_buffer captured;
  bool started = false;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}, std::size_t transferred = 0) {
    if (!started) {
      started = true;
      captured = detail::capture_buffer(self->take_all());
      if (!self->stream.is_open() || self->at_eof) {
        ec = self->at_eof ? error_code(asio::error::eof) : error_code(asio::error::bad_descriptor);
        return asio::post(self->stream.get_executor(), asio::append(std::move(op), ec, std::size_t(0)));
      }
    } else {
      captured.commit(transferred);
      self->note_read(transferred);
      if (ec == asio::error::eof) {
        self->at_eof = true;
        return op.complete(error_code(), captured.take());
      }
      if (ec) return op.complete(ec, captured.take());
    }
    self->stream.async_read_some(captured.prepare(), std::move(op));
  }
};

// A plain read that also notes whether the pipe was full.
struct read_some_op {
  pipe_reader::impl* self;
  asio::mutable_buffer buffer;
  bool started;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}, std::size_t transferred = 0) {
    if (!started) {
      started = true;
      return self->stream.async_read_some(buffer, std::move(op));
    }
    self->note_read(transferred);
    op.complete(ec, transferred);
  }
};

}  // namespace

pipe_reader::pipe_reader(const executor_type& ex, int fd) : impl_(std::make_unique<impl>(ex, fd)) {}
pipe_reader::pipe_reader(pipe_reader&&) noexcept = default;
pipe_reader& pipe_reader::operator=(pipe_reader&&) noexcept = default;
pipe_reader::~pipe_reader() = default;

pipe_reader::executor_type pipe_reader::get_executor() const noexcept { return impl_->stream.get_executor(); }
bool pipe_reader::is_open() const noexcept { return impl_ && impl_->stream.is_open(); }
int pipe_reader::native_handle() const noexcept { return is_open() ? impl_->stream.native_handle() : -1; }

void pipe_reader::close() noexcept {
  error_code ignored;
  impl_->stream.close(ignored);
}

void pipe_reader::cancel() noexcept {
  error_code ignored;
  impl_->stream.cancel(ignored);
}

void pipe_reader::read_some_impl(asio::mutable_buffer buffer,
                                 asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  auto& s = *impl_;
  if (s.buffered() > 0 || buffer.size() == 0) {
    const std::size_t n = std::min(buffer.size(), s.buffered());
    std::memcpy(buffer.data(), s.data.data() + s.begin, n);
    s.begin += n;
    s.compact();
    return detail::post_completion(s.stream.get_executor(), std::move(handler), error_code(), n);
  }
  if (!s.stream.is_open())
    return detail::post_completion(s.stream.get_executor(), std::move(handler),
                                   error_code(asio::error::bad_descriptor), std::size_t(0));
  asio::async_compose<decltype(handler), void(error_code, std::size_t)>(read_some_op{&s, buffer, false}, handler,
                                                                        s.stream);
}

void pipe_reader::read_line_impl(asio::any_completion_handler<void(error_code, std::string)> handler) {
  asio::async_compose<decltype(handler), void(error_code, std::string)>(read_line_op{impl_.get()}, handler,
                                                                        impl_->stream);
}

void pipe_reader::read_all_impl(asio::any_completion_handler<void(error_code, std::string)> handler) {
  asio::async_compose<decltype(handler), void(error_code, std::string)>(read_all_op{impl_.get(), detail::capture_buffer(), false}, handler,
                                                                        impl_->stream);
}

// ---------------------------------------------------------------------------------------------
// pipe_writer

struct pipe_writer::impl {
  impl(const executor_type& ex, int fd) : stream(ex, fd) {
    error_code ignored;
    stream.non_blocking(true, ignored);
  }
  asio::posix::stream_descriptor stream;
};

namespace {

// Writes `data` (all of it, or just some) without ever blocking the thread or raising SIGPIPE.
struct write_op {
  asio::posix::stream_descriptor* stream;
  asio::const_buffer borrowed;  // write_some: the caller's bytes
  std::string owned;            // write_all: its own copy (the op moves, so keep offsets)
  bool all;
  std::size_t written = 0;

  asio::const_buffer remaining() const noexcept {
    return (all ? asio::buffer(owned) : borrowed) + written;
  }

  enum { starting, waiting, done } state = starting;
  error_code result;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}) {
    if (state == done) return op.complete(result, written);
    if (state == waiting && ec) return op.complete(ec, written);
    const bool first = state == starting;
    state = waiting;
    while (stream->is_open() && remaining().size() > 0) {
      const asio::const_buffer next = remaining();
      const long n = detail::write_without_sigpipe(stream->native_handle(), next.data(), next.size());
      if (n >= 0) {
        written += static_cast<std::size_t>(n);
        if (!all) break;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return stream->async_wait(asio::posix::stream_descriptor::wait_write, std::move(op));
      result = errno == EPIPE ? error_code(asio::error::broken_pipe) : errno_code(errno);
      break;
    }
    if (!stream->is_open() && !result) result = asio::error::bad_descriptor;
    if (first) {
      state = done;
      return asio::post(stream->get_executor(), std::move(op));
    }
    op.complete(result, written);
  }
};

}  // namespace

pipe_writer::pipe_writer(const executor_type& ex, int fd) : impl_(std::make_unique<impl>(ex, fd)) {}
pipe_writer::pipe_writer(pipe_writer&&) noexcept = default;
pipe_writer& pipe_writer::operator=(pipe_writer&&) noexcept = default;
pipe_writer::~pipe_writer() = default;

pipe_writer::executor_type pipe_writer::get_executor() const noexcept { return impl_->stream.get_executor(); }
bool pipe_writer::is_open() const noexcept { return impl_ && impl_->stream.is_open(); }
int pipe_writer::native_handle() const noexcept { return is_open() ? impl_->stream.native_handle() : -1; }

void pipe_writer::close() noexcept {
  error_code ignored;
  impl_->stream.close(ignored);
}

void pipe_writer::cancel() noexcept {
  error_code ignored;
  impl_->stream.cancel(ignored);
}

void pipe_writer::write_some_impl(asio::const_buffer buffer,
                                  asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  asio::async_compose<decltype(handler), void(error_code, std::size_t)>(
      write_op{&impl_->stream, buffer, {}, false, 0, write_op::starting, {}}, handler, impl_->stream);
}

void pipe_writer::write_all_impl(std::string data,
                                 asio::any_completion_handler<void(error_code, std::size_t)> handler) {
  write_op op{&impl_->stream, {}, std::move(data), true, 0, write_op::starting, {}};
  asio::async_compose<decltype(handler), void(error_code, std::size_t)>(std::move(op), handler, impl_->stream);
}

}  // namespace herd
