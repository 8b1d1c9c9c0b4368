// A channel's state in one process, and the queue and pipe rules on top of the transport
// (channel_transport.hpp), the shared counts and slab (channel_shared.hpp), large messages
// (large_message.hpp) and the packing policy (packing.hpp). A channel is an AF_UNIX
// SOCK_SEQPACKET socketpair shared by every process that holds it (one send is one packet,
// delivered whole to exactly one receiver), a shared memory region for counters and the
// large-message slab, and eventfds for maxsize and join. The rules of
// shared/research/queue-prototype.md, each a bug if ignored, kept by channel_state.cpp with the
// files named:
//  1. No O_NONBLOCK on a shared descriptor (it belongs to the open file, so it would flip every
//     other process's blocking calls): MSG_DONTWAIT per call, and Asio waits on a private epoll
//     descriptor that watches the shared one (channel_transport.hpp: watcher).
//  2. Small messages are packed only while the channel is backlogged (SIOCOUTQ), at most
//     `batch` per packet, so one receiver cannot take the whole backlog (packing.hpp).
//  3. Packets stay at 64 KiB at most; larger messages go through the slab, else a memfd
//     (packing.hpp, channel_shared.hpp, large_message.hpp).
//  4. Receive into a buffer of the maximum packet size, always with a control buffer
//     (channel_transport.hpp: receive_packet).
//  5. Flush a pending batch before closing (channel::close, pending_batches.hpp).
#pragma once

#include <herd/detail/channel.hpp>

#include "channel_shared.hpp"
#include "channel_transport.hpp"
#include "framing.hpp"
#include "unique_fd.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace herd::detail {

struct channel::state {
  bool is_queue = true;
  bool joinable = false;
  channel_options options;
  unique_fd send_end;     // queue: A; pipe: this end (or none)
  unique_fd receive_end;  // queue: B; pipe: this end (or none)
  int send_fd = -1;
  int receive_fd = -1;
  unique_fd tokens;  // maxsize: an eventfd semaphore, O_NONBLOCK for everyone (rule 1)
  unique_fd done;    // joinable: written when `unfinished` reaches 0
  std::shared_ptr<shared_region> shared;
  std::atomic<bool> closed{false};

  // What this process keeps; a forked child finds it stale by pid and starts afresh.
  struct local_state {
    pid_t pid = 0;
    std::string batch;
    std::size_t batch_count = 0;
    // Received, not yet handed out. Inline messages are views into `packet`, which is not
    // received into again until the inbox is empty: a small message costs no allocation.
    struct message {
      std::string_view view;   // an inline message
      received_message owned;  // an out-of-band message: a buffer of its own, or its memfd mapped
      bool out_of_band = false;
    };
    // Read from the front and refilled only once empty: no allocation per message.
    struct message_queue {
      std::vector<message> items;
      std::size_t next = 0;
      bool empty() const noexcept { return next == items.size(); }
      message& front() noexcept { return items[next]; }
      void pop_front() noexcept {
        if (++next == items.size()) clear();
      }
      void push_back(message m) { items.push_back(std::move(m)); }
      void clear() noexcept {
        items.clear();
        next = 0;
      }
    } inbox;
    // A large message's buffer, given back once decoded (channel::recycle) and reused for the
    // next one: a fresh allocation per message made glibc hand its pages back and fault them in
    // again (1 MiB messages ran at 1 GB/s instead of 5–10).
    std::string spare;
    std::vector<char> packet;       // receive buffer: one maximum packet
    std::vector<record> records;    // the last packet's, parsed
    std::unique_ptr<waiters> waits;
    receiver_slot* receiver = nullptr;  // this process's, once it has received
    bool receiver_claimed = false;      // tried: the table may be full
  } local_;

  ~state();

  /// This process's local state; a forked copy's is reset first.
  local_state& local();
  bool owned_by_this_process() const noexcept;

  // -- waiting (the composed operations) ------------------------------------------------------

  watcher& receive_watcher(const asio::any_io_executor& home);
  watcher& send_watcher(const asio::any_io_executor& home);
  watcher& token_watcher(const asio::any_io_executor& home);
  watcher& done_watcher(const asio::any_io_executor& home);

  // -- sending --------------------------------------------------------------------------------

  /// One packet of `records` messages (and `descriptor`, if >= 0), blocking or not; waits up to
  /// the deadline. Returns success, would_block, timed_out or closed.
  error_code send_packet(std::string_view packet, std::size_t records, int descriptor, bool block,
                         deadline deadline);
  /// Sends the pending batch, if any.
  error_code flush_batch(bool block, deadline deadline = std::nullopt);
  /// Puts one encoded message in flight (after any token was taken), packing it as packing.hpp
  /// decides.
  error_code send_message(outgoing_message& message, bool block, deadline deadline);
  error_code send_message(std::string& bytes, bool block, deadline deadline);
  /// A message too large for a packet, through the slab, else a memfd of its own.
  error_code send_out_of_band(std::string_view bytes, bool block, deadline deadline);
  /// put(): a maxsize place, the counts, the send; undone if the send fails.
  error_code put(outgoing_message& message, bool block, deadline deadline);

  // -- counts and maxsize places ----------------------------------------------------------------

  bool bounded() const noexcept { return static_cast<bool>(tokens); }
  /// Takes one maxsize place without waiting.
  bool try_take_token();
  void give_tokens(std::uint64_t count);
  error_code take_token(bool block, deadline deadline);
  /// A queue closed by any process: sends fail.
  bool is_shut_down() const;
  /// Counts `n` messages in before they are sent (a receiver may take them at once); a send
  /// that failed counts them out again with uncounted_put.
  void counted_put(std::int64_t n = 1);
  void uncounted_put(std::int64_t n = 1);
  /// Messages taken off the socket leave qsize() and give back their maxsize places.
  void count_out(std::size_t n);

  // -- receiving ------------------------------------------------------------------------------

  /// Takes one packet off the socket into the inbox. Returns success, would_block, closed,
  /// bad_message or a system error.
  error_code receive_packet(bool block);
  /// Hands the next message of the inbox to `sink`: empty if there is none, else what the sink
  /// said.
  std::optional<error_code> take_from_inbox(const message_sink& sink);
  /// Keeps a large message's buffer for the next one.
  void keep_spare(std::string&& bytes) noexcept;
  /// A message from the inbox or the socket, never waiting: what the sink said, would_block or
  /// an error.
  error_code try_receive(const message_sink& sink);
  error_code get(const message_sink& sink, bool block, deadline deadline);

 private:
  void abandon_waiters() noexcept;
  waiters& waits();
  receiver_slot* receiver(local_state& l);
  error_code take_packet(local_state& l, bool block);
};

}  // namespace herd::detail
