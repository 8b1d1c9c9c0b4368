// The byte-level core of herd's channels (queue, joinable_queue, pipe connections), compiled in
// src/channel.cpp (the operations) and src/detail/ (channel_state, channel_shared, the transport,
// large_message for outgoing_message and received_message, pending_batches); the typed templates
// in queue.hpp and pipe.hpp encode and decode around it.
#pragma once

#include <herd/channel_options.hpp>
#include <herd/codec.hpp>
#include <herd/config.hpp>
#include <herd/detail/chrono.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herd {

namespace detail {

/// A message on its way into a channel, as it is encoded (herd::encoder's channel constructor).
/// Up to the channel's memory_limit() it is `bytes`. A larger one — one that would travel in a
/// memfd anyway — is written into a memfd while it is encoded: the whole encoding is never
/// copied into memory first, so a 1.5 GiB message costs one copy and one 1.5 GiB allocation, not
/// two. `bytes` then stages small pieces. Move-only; owns the memfd.
class outgoing_message {
 public:
  outgoing_message() noexcept = default;
  outgoing_message(outgoing_message&& other) noexcept;
  outgoing_message& operator=(outgoing_message&&) = delete;
  ~outgoing_message();

  /// Encodes `value` into a message for a channel whose large messages start past `limit`.
  template <typename T>
  static outgoing_message encode(const T& value, std::size_t limit) {
    outgoing_message message;
    encoder e(message.bytes, limit, &outgoing_message::spill, &message);
    e.value(value);
    message.finish();
    return message;
  }

  /// The message (small), or what is staged for the memfd (while encoding).
  std::string bytes;
  /// The memfd that holds the whole message, sealed (after encode()), or -1.
  int memory() const noexcept { return memory_; }
  /// The message's length in its memfd.
  std::size_t length() const noexcept { return written_; }
  /// Why the memfd could not be made or written (the message cannot be sent).
  error_code error() const noexcept { return error_; }
  /// True once the message outgrew `bytes`: it travels in its memfd (or, on an error, not at all).
  bool spilled() const noexcept { return memory_ >= 0 || error_; }

 private:
  // The encoder's overflow: writes what `bytes` gathered, then `data`, into the memfd (made on
  // the first call); returns how much `bytes` may gather from now on.
  static std::size_t spill(void* self, const void* data, std::size_t size) noexcept;
  void finish() noexcept;

  int memory_ = -1;
  std::size_t written_ = 0;
  error_code error_;
};

/// A received message with storage of its own: the buffer a slab message was copied into, or a
/// read-only mapping of the (sealed) memfd a large message came in, unmapped on destruction.
/// Move-only.
class received_message {
 public:
  received_message() noexcept = default;
  explicit received_message(std::string buffer) noexcept : buffer_(std::move(buffer)) {}
  /// Takes a mapping made by mmap.
  received_message(const char* mapping, std::size_t length) noexcept : mapping_(mapping), length_(length) {}
  received_message(received_message&& other) noexcept;
  received_message& operator=(received_message&& other) noexcept;
  ~received_message();

  std::string_view bytes() const noexcept {
    return mapping_ ? std::string_view(mapping_, length_) : std::string_view(buffer_);
  }
  /// The buffer, for the next message (empty for a mapping); unmaps a mapping.
  std::string release_buffer() noexcept;

 private:
  void unmap() noexcept;

  std::string buffer_;
  const char* mapping_ = nullptr;
  std::size_t length_ = 0;
};

/// Where a received message goes: `accept` is called once with its bytes, which live only for
/// the call (small messages are views into the packet they came in). For a message with storage
/// of its own (a buffer or a mapping), `owned` points to it, and `accept` may take it. What
/// `accept` returns (errc::bad_message if it cannot decode) is what the receive reports.
struct message_sink {
  error_code (*accept)(void* context, std::string_view bytes, received_message* owned);
  void* context;

  /// A sink that takes the message into `out` (a copy for a message viewed in its packet).
  static message_sink into(received_message& out) noexcept;
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

  /// How large an encoded message may grow in memory: larger ones travel in a memfd anyway
  /// (they fit no slab slot), so outgoing_message writes them there as they are encoded.
  std::size_t memory_limit() const noexcept;

  /// Blocking (or, without `block`, immediate: errc::would_block) sends and receives, with an
  /// optional timeout (errc::timed_out).
  error_code send(outgoing_message&& message, std::optional<std::chrono::milliseconds> timeout, bool block);
  /// Sends all of `messages`, packed `batch` to a packet, and returns once every packet left.
  /// `sent` counts the messages that left before an error.
  error_code send_many(std::vector<std::string>& messages, std::size_t& sent);
  error_code receive(const message_sink& sink, std::optional<std::chrono::milliseconds> timeout, bool block);

  /// A message this process already holds, or one waiting in the socket, never waiting:
  /// success, errc::would_block, or the error a receive would report (closed, bad_message, …).
  error_code try_receive(const message_sink& sink);

  /// Gives a received message's buffer back once it is decoded, for the next large message
  /// (a mapping is unmapped).
  void recycle(received_message&& message) noexcept;

  /// `home` is the executor this process's waits run on (the first one wins per process).
  /// async_receive_erased waits for a message: call it once try_receive() found none (the
  /// typed layer does), so a message already here costs no composed operation.
  void async_send_erased(const asio::any_io_executor& home, outgoing_message message,
                         asio::any_completion_handler<void(error_code)> handler);
  void async_receive_erased(const asio::any_io_executor& home,
                            asio::any_completion_handler<void(error_code, received_message)> handler);

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
  void async_join_erased(const asio::any_io_executor& home, asio::any_completion_handler<void(error_code)> handler);


 private:
  friend struct channel_access;  // the composed operations of src/channel.cpp
  // Owned. Not a unique_ptr: every includer would instantiate it (docs/design/decisions.md,
  // "Light public headers").
  state* state_;
};

/// What a channel end does whatever its message type, compiled in src/channel.cpp: the channel
/// and its home executor. A moved-from end has no channel: close() and the queries are harmless,
/// everything else reports errc::closed (its executor stays, for the completion).
class channel_end {
 public:
  using executor_type = asio::any_io_executor;

  channel_end(executor_type ex, std::shared_ptr<channel> ch) noexcept;
  channel_end(const channel_end&);
  channel_end& operator=(const channel_end&);
  channel_end(channel_end&& other) noexcept;
  channel_end& operator=(channel_end&& other) noexcept;
  ~channel_end();

  executor_type get_executor() const noexcept;
  error_code send_many(std::vector<std::string>& messages, std::size_t& sent);
  error_code flush();
  void close() noexcept;
  bool closed() const noexcept;
  std::size_t size() const noexcept;
  error_code task_done() noexcept;
  error_code join(std::optional<std::chrono::milliseconds> timeout);

 protected:
  executor_type executor_;
  std::shared_ptr<channel> channel_;
};

/// Sends every batch this process has packed but not sent. herd calls it before any wait it
/// offers, before fork and at exit, so a packed message never waits for a sender that waits.
void flush_all_channels() noexcept;

}  // namespace detail
}  // namespace herd
