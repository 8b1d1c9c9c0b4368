#include "channel_state.hpp"

#include <herd/error.hpp>

#include "fork_lock.hpp"
#include "large_message.hpp"
#include "packing.hpp"
#include "pending_batches.hpp"

#include <algorithm>
#include <poll.h>
#include <sys/epoll.h>

namespace herd::detail {

using std::chrono::milliseconds;

channel::state::~state() {
  // What this process packed leaves with it; a channel nobody reads any more cannot hold
  // the destructor for long.
  if (owned_by_this_process()) flush_batch(true, deadline_clock::now() + std::chrono::seconds(5));
  forget_pending(this);
  if (!owned_by_this_process()) abandon_waiters();
}

bool channel::state::owned_by_this_process() const noexcept { return local_.pid == current_pid(); }

channel::state::local_state& channel::state::local() {
  const pid_t self = current_pid();
  if (local_.pid != self) {
    // The parent's batch and inbox are not ours (herd flushed the batch before forking), and
    // its waiters belong to its io_context: close their descriptors, never touch the objects.
    abandon_waiters();
    local_.batch.clear();
    local_.batch_count = 0;
    local_.inbox.clear();
    local_.spare = std::string();
    local_.receiver = nullptr;
    local_.receiver_claimed = false;
    local_.pid = self;
  }
  return local_;
}

void channel::state::abandon_waiters() noexcept {
  if (local_.waits) waiters::abandon(local_.waits.release());
}

// ---------------------------------------------------------------------------------------------
// waiting

waiters& channel::state::waits() {
  auto& l = local();
  if (!l.waits) l.waits = std::make_unique<waiters>();
  return *l.waits;
}

watcher& channel::state::receive_watcher(const asio::any_io_executor& home) {
  auto& w = waits();
  if (!w.receive) w.receive.emplace(home, receive_fd, EPOLLIN);
  return *w.receive;
}

watcher& channel::state::send_watcher(const asio::any_io_executor& home) {
  auto& w = waits();
  if (!w.send) w.send.emplace(home, send_fd, EPOLLOUT);
  return *w.send;
}

watcher& channel::state::token_watcher(const asio::any_io_executor& home) {
  auto& w = waits();
  if (!w.token) w.token.emplace(home, tokens.get(), EPOLLIN);
  return *w.token;
}

watcher& channel::state::done_watcher(const asio::any_io_executor& home) {
  auto& w = waits();
  if (!w.done) w.done.emplace(home, done.get(), EPOLLIN);
  return *w.done;
}

// ---------------------------------------------------------------------------------------------
// sending

error_code channel::state::send_packet(std::string_view packet, std::size_t records, int descriptor, bool block,
                                       deadline deadline) {
  if (send_fd < 0) return errc::closed;
  error_code ec = detail::send_packet(send_fd, packet, descriptor, block, deadline);
  if (!ec && shared) shared->count_sent(records);
  return ec;
}

error_code channel::state::flush_batch(bool block, deadline deadline) {
  auto& l = local_;
  if (l.batch_count == 0) return {};
  error_code ec = send_packet(l.batch, l.batch_count, -1, block, deadline);
  if (ec == errc::would_block || ec == errc::timed_out) return ec;
  // Sent, or lost for good (the channel was closed): either way the batch is gone, and a lost
  // one no longer counts as queued.
  if (ec) uncounted_put(static_cast<std::int64_t>(l.batch_count));
  l.batch.clear();
  l.batch_count = 0;
  forget_pending(this);
  return ec;
}

error_code channel::state::send_message(outgoing_message& message, bool block, deadline deadline) {
  if (!message.spilled()) return send_message(message.bytes, block, deadline);
  if (message.error()) return message.error();
  local();
  if (error_code ec = flush_batch(block, deadline)) return ec;
  return send_packet(memfd_packet(message.length()), 1, message.memory(), block, deadline);
}

error_code channel::state::send_message(std::string& bytes, bool block, deadline deadline) {
  auto& l = local();
  packing_inputs in;
  in.message_size = bytes.size();
  in.batch = options.batch;
  in.may_pack = block && options.pack_puts;
  in.batch_count = l.batch_count;
  in.batch_bytes = l.batch.size();
  packing_action action = decide_packing(in);
  if (action == packing_action::measure_backlog) {
    in.socket_backlog = bytes_waiting_to_send(send_fd);
    action = decide_packing(in);
  }
  switch (action) {
    case packing_action::send_out_of_band:
      if (error_code ec = flush_batch(block, deadline)) return ec;
      return send_out_of_band(bytes, block, deadline);
    case packing_action::measure_backlog:  // not once measured
    case packing_action::send_alone: {
      if (error_code ec = flush_batch(block, deadline)) return ec;
      std::string packet;
      packet.reserve(record_header + bytes.size());
      append_inline(packet, bytes);
      return send_packet(packet, 1, -1, block, deadline);
    }
    case packing_action::flush_then_append:
      // If the full batch cannot leave, this message fails and is not packed.
      if (error_code ec = flush_batch(block, deadline)) return ec;
      [[fallthrough]];
    case packing_action::append:
    case packing_action::append_then_flush:
      append_inline(l.batch, bytes);
      if (++l.batch_count == 1) remember_pending(this);
      break;
  }
  if (action != packing_action::append_then_flush) return {};
  // This message is packed: it will be sent, now or by the next flush. Only a closed channel
  // loses it (and the rest of the batch) — reported here.
  error_code ec = flush_batch(block, deadline);
  if (ec == errc::would_block || ec == errc::timed_out) return {};
  // flush_batch counted the lost batch out, this message too: count it in again, for put()
  // counts a message that failed out itself.
  if (ec) counted_put();
  return ec;
}

error_code channel::state::send_out_of_band(std::string_view bytes, bool block, deadline deadline) {
  if (const auto index = shared ? shared->put_in_slot(bytes) : std::nullopt) {
    error_code ec = send_packet(slab_packet(*index, bytes.size()), 1, -1, block, deadline);
    if (ec) shared->release_slot(*index);
    return ec;
  }
  // A memfd of its own: the fastest way without a free slot, for any size. (Messages larger
  // than a slot are in one already: outgoing_message wrote them there as they were encoded.)
  unique_fd memory;
  if (error_code ec = write_message_memfd(bytes, memory)) return ec;
  return send_packet(memfd_packet(bytes.size()), 1, memory.get(), block, deadline);
}

error_code channel::state::put(outgoing_message& message, bool block, deadline deadline) {
  if (send_fd < 0) return errc::closed;
  if (message.error()) return message.error();  // its memfd could not be made or written
  if (bounded()) {
    if (error_code ec = take_token(block, deadline)) return ec;
  }
  counted_put();  // before the send: a receiver may take it at once
  error_code ec = send_message(message, block, deadline);
  if (ec) {
    give_tokens(bounded() ? 1 : 0);
    uncounted_put();
  }
  return ec;
}

// ---------------------------------------------------------------------------------------------
// counts and maxsize places

bool channel::state::try_take_token() { return eventfd_take(tokens.get()); }

void channel::state::give_tokens(std::uint64_t count) {
  if (!bounded() || count == 0) return;
  eventfd_add(tokens.get(), count);
}

error_code channel::state::take_token(bool block, deadline deadline) {
  while (!try_take_token()) {
    if (closed.load() || is_shut_down()) return errc::closed;
    if (!block) return errc::would_block;
    // Slots come back as receivers take messages; a closed queue must not leave us asleep.
    const auto slice = deadline_clock::now() + milliseconds(50);
    if (!wait_ready(tokens.get(), POLLIN, deadline ? std::min(*deadline, slice) : slice) &&
        deadline_passed(deadline, deadline_clock::now()))
      return errc::timed_out;
  }
  return {};
}

bool channel::state::is_shut_down() const { return send_fd < 0 || shut_down_for_sending(send_fd); }

void channel::state::counted_put(std::int64_t n) {
  if (!shared) return;
  shared->count_put(n);
  // Work is pending again: forget a stale "all done".
  if (joinable && shared->add_unfinished(n)) eventfd_drain(done.get());
}

void channel::state::uncounted_put(std::int64_t n) {
  if (!shared) return;
  shared->uncount_put(n);
  if (joinable) shared->remove_unfinished(n);
}

void channel::state::count_out(std::size_t n) {
  give_tokens(n);
  if (shared) shared->count_taken(n);
}

// ---------------------------------------------------------------------------------------------
// receiving

// This process's entry in the receivers' table, claimed on its first receive; null if the
// table is full (then a loss of this process's cannot be repaired: see channel::size).
receiver_slot* channel::state::receiver(local_state& l) {
  if (l.receiver_claimed || !shared) return l.receiver;
  l.receiver_claimed = true;
  return l.receiver = shared->claim_receiver(l.pid);
}

error_code channel::state::receive_packet(bool block) {
  auto& l = local();
  if (receive_fd < 0) return errc::closed;
  if (!l.inbox.empty()) return {};  // `packet` still holds what the inbox views
  // Inside a receive from before the system call until the packet is counted out: a SIGKILL
  // in between loses the packet and its count, and channel::size repairs the count only when
  // no living process is in here.
  receiver_slot* slot = receiver(l);
  if (slot) slot->receiving.store(1);
  error_code ec = take_packet(l, block);
  if (slot) slot->receiving.store(0, std::memory_order_release);
  return ec;
}

error_code channel::state::take_packet(local_state& l, bool block) {
  received_packet received;
  if (error_code ec = detail::receive_packet(receive_fd, l.packet, block, received)) return ec;
  const std::string_view bytes(l.packet.data(), received.size);
  std::vector<record>& records = l.records;
  records.clear();
  if (received.descriptors_dropped) {
    // The kernel had no free descriptor for the memfd a large message came in, and dropped it
    // with the packet: that message is lost. Counted out, and reported as what it is (EMFILE).
    if (!received.descriptors.empty() || !parse_packet(bytes, 1, records)) return errc::bad_message;
    count_out(1);
    records.clear();
    return system_code(EMFILE);
  }
  // More records than any sender of this channel packs is no packet of herd's: taking them
  // would give back more maxsize tokens than were taken.
  if (!parse_packet(bytes, received.descriptors.size(), records) ||
      records.size() > messages_per_packet(options.batch))
    return errc::bad_message;
  // Counted out the moment they leave the kernel, before any is copied: a process killed while
  // it copies a large message loses that message, not the queue's count of it.
  count_out(records.size());
  std::size_t next_descriptor = 0;
  std::size_t taken = 0;
  error_code problem;
  for (const record& r : records) {
    received_message owned;
    error_code ec;
    switch (r.kind) {
      case record_kind::inline_bytes:
        l.inbox.push_back({r.bytes, {}, false});
        ++taken;
        continue;
      case record_kind::slab:
        if (shared && shared->take_from_slot(r.slot, r.length, l.spare)) owned = received_message(std::move(l.spare));
        else ec = errc::bad_message;
        break;
      case record_kind::memfd:
        ec = read_message_memfd(received.descriptors[next_descriptor++].get(), r.length, l.spare, owned);
        break;
    }
    if (ec) {
      problem = ec;
    } else {
      l.inbox.push_back({{}, std::move(owned), true});
      ++taken;
    }
  }
  return taken == 0 && problem ? problem : error_code();
}

std::optional<error_code> channel::state::take_from_inbox(const message_sink& sink) {
  auto& l = local();
  if (l.inbox.empty()) return std::nullopt;
  if (!l.inbox.front().out_of_band) {
    const std::string_view view = l.inbox.front().view;  // into `packet`, untouched until the inbox is empty
    l.inbox.pop_front();
    return sink.accept(sink.context, view, nullptr);
  }
  received_message owned = std::move(l.inbox.front().owned);
  l.inbox.pop_front();
  error_code ec = sink.accept(sink.context, owned.bytes(), &owned);
  keep_spare(owned.release_buffer());  // a buffer the sink left; a mapping is unmapped
  return ec;
}

// One spare at most, and none larger than a slab slot (a 1 GiB message's buffer is let go).
void channel::state::keep_spare(std::string&& bytes) noexcept {
  auto& l = local();
  if (bytes.capacity() > max_inline && bytes.capacity() <= options.slab_slot_size &&
      bytes.capacity() > l.spare.capacity())
    l.spare = std::move(bytes);
}

error_code channel::state::try_receive(const message_sink& sink) {
  for (;;) {
    if (auto taken = take_from_inbox(sink)) return *taken;
    if (error_code ec = receive_packet(false)) return ec;
  }
}

error_code channel::state::get(const message_sink& sink, bool block, deadline deadline) {
  if (auto taken = take_from_inbox(sink)) return *taken;
  // A blocking receive polls for a moment before it sleeps: a wake-up costs ~20 µs on a VM
  // (measured: a pipe round trip fell from 43 µs to 3.4 µs when both sides poll for 50 µs).
  auto poll_until = deadline_clock::now();
  if (block) poll_until += options.spin;
  if (deadline) poll_until = std::min(poll_until, *deadline);
  for (;;) {
    const bool polling = deadline_clock::now() < poll_until;
    // Blocking without a deadline sleeps in recvmsg: the kernel wakes one receiver per packet.
    error_code ec = receive_packet(block && !deadline && !polling);
    if (!ec) {
      if (auto taken = take_from_inbox(sink)) return *taken;
      continue;
    }
    if (ec != errc::would_block || !block) return ec;
    if (!polling && !wait_ready(receive_fd, POLLIN, deadline)) return errc::timed_out;
  }
}

}  // namespace herd::detail
