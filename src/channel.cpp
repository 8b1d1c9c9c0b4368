// herd's channels as the typed layer sees them (include/herd/detail/channel.hpp): how a queue
// or pipe is made, its blocking operations, and its composed asynchronous ones. The rules they
// keep, and the state they work on, are in src/detail/channel_state.hpp.
#include <herd/detail/channel.hpp>
#include <herd/detail/deadline.hpp>
#include <herd/detail/timer.hpp>
#include <herd/error.hpp>

#include "detail/channel_state.hpp"
#include "detail/post_completion.hpp"
#include "detail/packing.hpp"
#include "detail/pending_batches.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

namespace herd::detail {

using std::chrono::milliseconds;

channel::channel(std::unique_ptr<state> s) : state_(s.release()) {}
channel::~channel() { delete state_; }

namespace {

void check_options(const channel_options& options) {
  if (options.slab_slot_size > (std::size_t(1) << 40) || options.slab_slots > 4096)
    throw boost::system::system_error(errc::invalid_argument, "herd: channel_options: slab too large");
}

}  // namespace

std::shared_ptr<channel> channel::make_queue(const channel_options& options, bool joinable) {
  check_options(options);
  auto s = std::make_unique<state>();
  s->is_queue = true;
  s->joinable = joinable;
  s->options = options;
  auto ends = make_socketpair();
  s->send_end = std::move(ends[0]);
  s->receive_end = std::move(ends[1]);
  s->send_fd = s->send_end.get();
  s->receive_fd = s->receive_end.get();
  if (options.maxsize > 0) {
    if (options.maxsize > 0xfffffffeu)
      throw boost::system::system_error(errc::invalid_argument, "herd: queue maxsize too large");
    s->tokens = make_eventfd(static_cast<unsigned>(options.maxsize), EFD_SEMAPHORE);
  }
  if (joinable) s->done = make_eventfd(1, 0);  // nothing unfinished yet: "all done" holds
  s->shared = std::make_shared<shared_region>(options.slab_slots, options.slab_slot_size);
  return std::make_shared<channel>(std::move(s));
}

std::array<std::shared_ptr<channel>, 2> channel::make_pipe(bool duplex, const channel_options& options) {
  check_options(options);
  auto ends = make_socketpair();
  auto shared = std::make_shared<shared_region>(options.slab_slots, options.slab_slot_size);
  std::array<std::shared_ptr<channel>, 2> result;
  for (int i = 0; i < 2; ++i) {
    auto s = std::make_unique<state>();
    s->is_queue = false;
    s->options = options;
    s->shared = shared;
    const int fd = ends[i].get();
    if (duplex || i == 0) s->receive_fd = fd;
    if (duplex || i == 1) s->send_fd = fd;
    s->receive_end = std::move(ends[i]);
    if (!duplex) ::shutdown(fd, i == 0 ? SHUT_WR : SHUT_RD);
    result[i] = std::make_shared<channel>(std::move(s));
  }
  return result;
}


std::size_t channel::memory_limit() const noexcept {
  const auto& o = state_->options;
  return o.slab_slots > 0 ? std::max(o.slab_slot_size, max_inline) : max_inline;
}

error_code channel::send(outgoing_message&& message, std::optional<milliseconds> timeout, bool block) {
  return state_->put(message, block, deadline_after(timeout));
}

error_code channel::send_many(std::vector<std::string>& messages, std::size_t& sent) {
  auto& s = *state_;
  sent = 0;
  if (s.send_fd < 0) return errc::closed;
  if (error_code ec = s.flush_batch(true)) return ec;
  const std::size_t limit = messages_per_packet(s.options.batch);
  const auto places = [&](std::size_t n) { return s.bounded() ? n : 0; };  // maxsize tokens held
  std::string packet;
  std::size_t in_packet = 0;
  // Sends `count` messages (a packet, or one out of band), counted in first; if the send fails
  // they are counted out and their places in a bounded queue given back.
  auto deliver = [&](std::size_t count, auto&& send) -> error_code {
    s.counted_put(static_cast<std::int64_t>(count));
    error_code ec = send();
    if (ec) {
      s.uncounted_put(static_cast<std::int64_t>(count));
      s.give_tokens(places(count));
    } else {
      sent += count;
    }
    return ec;
  };
  auto send_packed = [&]() -> error_code {
    if (in_packet == 0) return {};
    error_code ec = deliver(in_packet, [&] { return s.send_packet(packet, in_packet, -1, true, std::nullopt); });
    packet.clear();
    in_packet = 0;
    return ec;
  };
  for (auto& bytes : messages) {
    // Pack while places are free; what is packed must leave before this waits for room.
    if (s.bounded() && !s.try_take_token()) {
      if (error_code ec = send_packed()) return ec;
      if (error_code ec = s.take_token(true, std::nullopt)) return ec;
    }
    const bool out_of_band = travels_out_of_band(bytes.size());
    if (out_of_band || !batch_has_room(in_packet, packet.size(), bytes.size(), limit)) {
      if (error_code ec = send_packed()) {
        s.give_tokens(places(1));  // this message's place
        return ec;
      }
    }
    if (out_of_band) {
      if (error_code ec = deliver(1, [&] { return s.send_out_of_band(bytes, true, std::nullopt); })) return ec;
      continue;
    }
    append_inline(packet, bytes);
    ++in_packet;
  }
  return send_packed();
}

error_code channel::receive(const message_sink& sink, std::optional<milliseconds> timeout, bool block) {
  flush_all_channels();
  return state_->get(sink, block, deadline_after(timeout));
}

error_code channel::try_receive(const message_sink& sink) {
  flush_all_channels();
  return state_->try_receive(sink);
}

void channel::recycle(received_message&& message) noexcept { state_->keep_spare(message.release_buffer()); }

error_code channel::flush() noexcept {
  try {
    if (!state_->owned_by_this_process()) return {};
    return state_->flush_batch(true);
  } catch (...) {
    return errc::closed;
  }
}

void channel::close() noexcept {
  auto& s = *state_;
  if (s.owned_by_this_process()) s.flush_batch(true);  // rule 5
  s.closed = true;
  if (s.is_queue) {
    // For every process at once: senders get EPIPE; receivers drain, then read end of file.
    if (s.send_fd >= 0) ::shutdown(s.send_fd, SHUT_RDWR);
  } else {
    forget_pending(&s);
    s.receive_end.reset();
    s.send_fd = s.receive_fd = -1;
  }
  if (s.tokens) s.give_tokens(1);  // wake senders waiting for room: they find it closed
}

bool channel::is_closed() const noexcept {
  return state_->closed.load() || (state_->is_queue && state_->is_shut_down());
}

std::optional<std::size_t> channel::size() const noexcept {
  auto& s = *state_;
  if (!s.is_queue || !s.shared) return std::nullopt;
  // A consumer SIGKILLed inside its receive took a packet off the socket without living to
  // count it out: on a drained queue that shows, and is repaired. The socket is asked only when
  // the count could hide such a loss.
  const std::uint64_t observed = s.shared->header().counts.load();
  const bool socket_empty =
      message_counts::may_hide_lost_count_outs(observed) && s.receive_fd >= 0 && nothing_to_receive(s.receive_fd);
  const auto repaired = s.shared->repair_counts(observed, socket_empty);
  s.give_tokens(repaired.lost);
  return static_cast<std::size_t>(std::max<std::int64_t>(0, message_counts::queued(repaired.counts)));
}

error_code channel::task_done() noexcept {
  auto& s = *state_;
  if (!s.joinable) return errc::invalid_argument;
  const std::int64_t before = s.shared->finish_task();
  if (before == 0) return errc::invalid_argument;  // Python: "task_done() called too many times"
  if (before == 1) eventfd_add(s.done.get(), 1);
  return {};
}

error_code channel::join(std::optional<milliseconds> timeout) {
  auto& s = *state_;
  if (!s.joinable) return errc::invalid_argument;
  flush_all_channels();
  const auto deadline = deadline_after(timeout);
  while (s.shared->unfinished() > 0) {
    // "All done" is an eventfd that may be stale for a moment (see counted_put): sleep on it in
    // short slices and look at the counter again.
    const auto slice = deadline_clock::now() + milliseconds(20);
    wait_ready(s.done.get(), POLLIN, deadline ? std::min(*deadline, slice) : slice);
    if (deadline_passed(deadline, deadline_clock::now()) && s.shared->unfinished() > 0)
      return errc::timed_out;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// channel_end: the untyped half of a queue's or connection's end.

channel_end::channel_end(executor_type ex, std::shared_ptr<channel> ch) noexcept
    : executor_(std::move(ex)), channel_(std::move(ch)) {}
channel_end::channel_end(const channel_end&) = default;
channel_end& channel_end::operator=(const channel_end&) = default;
// A moved-from end keeps its executor, for the completions that report it closed.
channel_end::channel_end(channel_end&& other) noexcept : executor_(other.executor_), channel_(std::move(other.channel_)) {}
channel_end& channel_end::operator=(channel_end&& other) noexcept {
  executor_ = other.executor_;
  channel_ = std::move(other.channel_);
  return *this;
}
channel_end::~channel_end() = default;

channel_end::executor_type channel_end::get_executor() const noexcept { return executor_; }

error_code channel_end::send_many(std::vector<std::string>& messages, std::size_t& sent) {
  sent = 0;
  return channel_ ? channel_->send_many(messages, sent) : error_code(errc::closed);
}
error_code channel_end::flush() { return channel_ ? channel_->flush() : error_code(errc::closed); }
void channel_end::close() noexcept {
  if (channel_) channel_->close();
}
bool channel_end::closed() const noexcept { return !channel_ || channel_->is_closed(); }
std::size_t channel_end::size() const noexcept { return channel_ ? channel_->size().value_or(0) : 0; }
error_code channel_end::task_done() noexcept { return channel_ ? channel_->task_done() : error_code(errc::closed); }
error_code channel_end::join(std::optional<std::chrono::milliseconds> timeout) {
  return channel_ ? channel_->join(timeout) : error_code(errc::closed);
}

// ---------------------------------------------------------------------------------------------
// Asynchronous operations: try without blocking, else wait on a private epoll descriptor, then
// retry. They honour all cancellation types, including one that arrives between steps, and
// never complete inside the initiating call.

// Their one way into a channel's state.
struct channel_access {
  static channel::state& state_of(channel& c) noexcept { return *c.state_; }
};

namespace {

template <typename Self>
bool cancelled(Self& op) {
  return op.get_cancellation_state().cancelled() != asio::cancellation_type::none;
}

// channel::async_receive_erased, called once try_receive found nothing: waits until the socket is
// readable, then tries again (another receiver may have taken the packet: wait again).
struct receive_op {
  std::shared_ptr<channel> owner;
  asio::any_io_executor home;
  bool started = false;
  received_message message{};

  template <typename Self>
  void operator()(Self& op, error_code ec = {}) {
    auto& s = channel_access::state_of(*owner);
    if (!started) {
      started = true;
      op.reset_cancellation_state(asio::enable_total_cancellation());
    } else {
      if (ec == asio::error::operation_aborted || cancelled(op))
        return op.complete(asio::error::operation_aborted, received_message());  // nothing was taken
      if (ec) return op.complete(ec, received_message());
      ec = s.try_receive(message_sink::into(message));
      if (ec != errc::would_block) return op.complete(ec, std::move(message));
    }
    s.receive_watcher(home).stream.async_wait(asio::posix::stream_descriptor::wait_read, std::move(op));
  }
};

struct send_op {
  std::shared_ptr<channel> owner;
  asio::any_io_executor home;
  outgoing_message message;
  enum { starting, awaiting_token, sending, finished } phase = starting;
  bool holds_token = false;
  bool counted = false;
  bool waited = false;

  template <typename Self>
  void operator()(Self& op, error_code ec = {}) {
    auto& s = channel_access::state_of(*owner);
    if (phase == finished) return op.complete(ec);
    if (phase == starting) {
      op.reset_cancellation_state(asio::enable_total_cancellation());
      s.local();
      // A batch this process packed goes first (each producer's order holds).
      if (error_code flushed = s.flush_batch(true)) return finish(op, flushed, false);
      if (message.error()) return finish(op, message.error(), false);  // its memfd could not be written
      phase = s.bounded() ? awaiting_token : sending;
    } else if (ec || cancelled(op)) {
      // The wait ended (cancelled): nothing was sent; what was taken is given back.
      return finish(op, ec ? ec : error_code(asio::error::operation_aborted), false);
    }
    if (phase == awaiting_token) {
      if (!s.try_take_token()) {
        if (s.closed.load() || s.is_shut_down()) return finish(op, errc::closed, false);
        waited = true;
        return s.token_watcher(home).stream.async_wait(asio::posix::stream_descriptor::wait_read, std::move(op));
      }
      holds_token = true;
      phase = sending;
    }
    if (!counted) {
      s.counted_put();  // before the send: a receiver may take it at once
      counted = true;
    }
    error_code sent;
    if (message.spilled()) {
      // Written once, when it was encoded: a retry after would_block only sends the packet.
      sent = s.send_packet(memfd_packet(message.length()), 1, message.memory(), false, std::nullopt);
    } else if (travels_out_of_band(message.bytes.size())) {
      sent = s.send_out_of_band(message.bytes, false, std::nullopt);
    } else {
      std::string packet;
      packet.reserve(record_header + message.bytes.size());
      append_inline(packet, message.bytes);
      sent = s.send_packet(packet, 1, -1, false, std::nullopt);
    }
    if (sent == errc::would_block) {
      waited = true;
      return s.send_watcher(home).stream.async_wait(asio::posix::stream_descriptor::wait_write, std::move(op));
    }
    finish(op, sent, !sent);
  }

  template <typename Self>
  void finish(Self& op, error_code ec, bool sent) {
    auto& s = channel_access::state_of(*owner);
    if (!sent) {
      if (holds_token) s.give_tokens(1);
      if (counted) s.uncounted_put();
    }
    phase = finished;
    if (!waited) {  // never inline; through a copy: `home` lives in `op`, which the post moves
      const asio::any_io_executor ex = home;
      return asio::post(ex, asio::append(std::move(op), ec));
    }
    op.complete(ec);
  }
};

struct join_op {
  std::shared_ptr<channel> owner;
  asio::any_io_executor home;
  bool started = false;
  std::shared_ptr<timer> backstop{};

  template <typename Self>
  void operator()(Self& op, error_code ec = {}) {
    auto& shared = *channel_access::state_of(*owner).shared;
    if (!started) {
      started = true;
      op.reset_cancellation_state(asio::enable_total_cancellation());
      backstop = std::make_shared<timer>(home);
      if (shared.unfinished() == 0) {
        const asio::any_io_executor ex = home;
        return asio::post(ex, std::move(op));
      }
    } else {
      backstop->cancel();
      if (ec && ec != asio::error::operation_aborted) return op.complete(ec);
      if (cancelled(op)) return op.complete(asio::error::operation_aborted);
      // An abort the caller did not ask for came from the backstop below: look again.
      if (shared.unfinished() == 0) return op.complete(error_code());
    }
    // Wake on "all done", or after a short while anyway: that eventfd may be stale for a
    // moment (see counted_put), so the counter has the last word.
    auto& watch = channel_access::state_of(*owner).done_watcher(home).stream;
    backstop->async_wait(milliseconds(20), [weak = std::weak_ptr<channel>(owner), &watch](error_code e) {
      if (!e && weak.lock()) {
        error_code ignored;
        watch.cancel(ignored);
      }
    });
    watch.async_wait(asio::posix::stream_descriptor::wait_read, std::move(op));
  }
};

}  // namespace

void channel::async_send_erased(const asio::any_io_executor& home, outgoing_message message,
                         asio::any_completion_handler<void(error_code)> handler) {
  asio::async_compose<decltype(handler), void(error_code)>(send_op{shared_from_this(), home, std::move(message)},
                                                           handler, home);
}

void channel::async_receive_erased(const asio::any_io_executor& home,
                            asio::any_completion_handler<void(error_code, received_message)> handler) {
  asio::async_compose<decltype(handler), void(error_code, received_message)>(
      receive_op{shared_from_this(), home}, handler, home);
}

void channel::async_join_erased(const asio::any_io_executor& home, asio::any_completion_handler<void(error_code)> handler) {
  if (!state_->joinable)
    return post_completion(home, std::move(handler), error_code(errc::invalid_argument));
  flush_all_channels();
  asio::async_compose<decltype(handler), void(error_code)>(join_op{shared_from_this(), home}, handler, home);
}

}  // namespace herd::detail
