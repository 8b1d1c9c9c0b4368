// The byte-level core of herd's channels (queue, joinable_queue, pipe connections), compiled in
// src/channel.cpp; the typed templates in queue.hpp and pipe.hpp encode and decode around it.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herd {

/// Options of a channel (queue or pipe).
struct channel_options {
  /// Queues: at most this many messages in flight (put waits when full); 0 is unbounded.
  std::size_t maxsize = 0;
  /// Most small messages one packet carries (put_many always packs; put packs only with
  /// `pack_puts`). A receiver takes a whole packet, so this also bounds how much of a backlog
  /// one receiver can hold while others wait (measured: 16 keeps four consumers even).
  std::size_t batch = 16;
  /// Let a blocking put() pack messages while receivers are behind, instead of sending each at
  /// once: several times the throughput, but a packed message is in this process, not in the
  /// kernel, until its packet leaves (at the latest before this process waits on herd, forks or
  /// exits normally) — a SIGKILL then loses up to `batch - 1` messages whose put() returned.
  bool pack_puts = false;
  /// Messages too large for a packet travel through a shared slab of this many slots…
  std::size_t slab_slots = 4;
  /// …each this large; larger messages (or all slots busy) go through a memfd.
  std::size_t slab_slot_size = std::size_t(2) << 20;
  /// A blocking receive (get, recv) that finds nothing polls this long before it sleeps: on a
  /// virtual machine a sleeping process takes ~20 µs to wake, so a conversation whose replies
  /// come quickly runs several times faster. An idle receiver spends at most this much CPU
  /// per receive. Zero sleeps at once. Awaiting receives never poll: they would stall the loop.
  std::chrono::microseconds spin{50};
};

namespace detail {

/// Where a received message goes: `accept` is called once with its bytes, which live only for
/// the call (small messages are views into the packet they came in). For a message with a
/// buffer of its own, `owned` points to that buffer, which `accept` may take. What `accept`
/// returns (errc::bad_message if it cannot decode) is what the receive reports.
struct message_sink {
  error_code (*accept)(void* context, std::string_view bytes, std::string* owned);
  void* context;

  /// A sink that copies (or takes) the message into `out`.
  static message_sink into(std::string& out) noexcept;
};

/// One end of a channel as this process sees it: where it sends, where it receives, and the
/// memory shared by every process that holds the channel. Thread safety: as herd's I/O objects.
class channel : public std::enable_shared_from_this<channel> {
 public:
  struct state;

  static std::shared_ptr<channel> make_queue(const channel_options& options, bool joinable);
  /// Two connected ends. Not duplex: the first only receives, the second only sends.
  static std::array<std::shared_ptr<channel>, 2> make_pipe(bool duplex, const channel_options& options);

  explicit channel(std::unique_ptr<state> s);
  ~channel();
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  /// Blocking (or, without `block`, immediate: errc::would_block) sends and receives, with an
  /// optional timeout (errc::timed_out).
  error_code send(std::string&& bytes, std::optional<std::chrono::milliseconds> timeout, bool block);
  /// Sends all of `messages`, packed `batch` to a packet, and returns once every packet left.
  /// `sent` counts the messages that left before an error.
  error_code send_many(std::vector<std::string>& messages, std::size_t& sent);
  error_code receive(const message_sink& sink, std::optional<std::chrono::milliseconds> timeout, bool block);

  /// A message this process already holds, or one waiting in the socket, never waiting:
  /// success, errc::would_block, or the error a receive would report (closed, bad_message, …).
  error_code try_receive(const message_sink& sink);

  /// Gives a received message's buffer back once it is decoded, for the next large message.
  void recycle(std::string&& bytes) noexcept;

  /// `home` is the executor this process's waits run on (the first one wins per process).
  /// async_receive waits for a message: call it once try_receive() found none (the typed layer
  /// does), so a message already here costs no composed operation.
  void async_send(const asio::any_io_executor& home, std::string bytes,
                  asio::any_completion_handler<void(error_code)> handler);
  void async_receive(const asio::any_io_executor& home,
                     asio::any_completion_handler<void(error_code, std::string)> handler);

  /// Sends what a blocking sender has packed but not sent yet.
  error_code flush() noexcept;
  /// Queues: closes the channel for every process (receivers drain, then errc::closed;
  /// senders get errc::closed). Pipe ends: closes this process's end.
  void close() noexcept;
  bool is_closed() const noexcept;
  /// Messages put and not yet taken, for queues.
  std::optional<std::size_t> size() const noexcept;

  // joinable_queue
  error_code task_done() noexcept;
  error_code join(std::optional<std::chrono::milliseconds> timeout);
  void async_join(const asio::any_io_executor& home, asio::any_completion_handler<void(error_code)> handler);

  state& get_state() noexcept { return *state_; }

 private:
  std::unique_ptr<state> state_;
};

/// Sends every batch this process has packed but not sent. herd calls it before any wait it
/// offers, before fork and at exit, so a packed message never waits for a sender that waits.
void flush_all_channels() noexcept;

}  // namespace detail
}  // namespace herd
