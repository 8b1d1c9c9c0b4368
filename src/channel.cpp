// herd's channels: an AF_UNIX SOCK_SEQPACKET socketpair shared by every process that holds the
// channel (one send is one packet, delivered whole to exactly one receiver), a shared memory
// region for counters and the large-message slab, and eventfds for maxsize and join. The rules
// of shared/research/queue-prototype.md, each a bug if ignored:
//  1. No O_NONBLOCK on a shared descriptor (it belongs to the open file, so it would flip every
//     other process's blocking calls): MSG_DONTWAIT per call, and Asio waits on a private epoll
//     descriptor that watches the shared one.
//  2. Small messages are packed only while the channel is backlogged (SIOCOUTQ), at most
//     `batch` per packet, so one receiver cannot take the whole backlog.
//  3. Packets stay at 64 KiB at most; larger messages go through the slab, else a memfd.
//  4. Receive into a buffer of the maximum packet size, always with a control buffer.
//  5. Flush a pending batch before closing.
#include <herd/detail/channel.hpp>
#include <herd/detail/deadline.hpp>
#include <herd/detail/typed_channel.hpp>
#include <herd/error.hpp>

#include "detail/framing.hpp"
#include "detail/io.hpp"
#include "detail/process_hooks.hpp"
#include "detail/unique_fd.hpp"

#include <herd/detail/timer.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <linux/sockios.h>

namespace herd::detail {
namespace {

using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

error_code system_code(int value) { return {value, boost::system::system_category()}; }

// Sending while this many bytes wait in the socket means receivers are behind: pack.
constexpr int backlog_bytes = 16 * 1024;
constexpr std::size_t max_descriptors_per_packet = 16;

// ---------------------------------------------------------------------------------------------
// Large messages in memfds. The sender writes the message with pwritev (faster here than writing
// through a mapping, which faults on every page) and seals it; the receiver maps it read-only
// and decodes in place. Measured for 1.5 GiB (bench/README.md): every pass over fresh memory
// costs 0.5–1 s on this VM (more when the host must back it again), a warm copy 0.15 s, so the
// number of fresh buffers a message goes through is what counts.

// What an encoder gathers before writing on, once its message is in a memfd.
constexpr std::size_t spill_staging = 256 * 1024;

unique_fd make_message_memfd() { return unique_fd(::memfd_create("herd-message", MFD_CLOEXEC | MFD_ALLOW_SEALING)); }

// Writes all of `parts` from `offset`: a single call stops at 0x7ffff000 bytes. False with errno.
bool write_parts(int fd, iovec* parts, int count, std::size_t offset) noexcept {
  std::size_t left = 0;  // written of the first part
  for (;;) {
    for (; count > 0 && left >= parts->iov_len; ++parts, --count) left -= parts->iov_len;
    if (count == 0) return true;
    parts->iov_base = static_cast<char*>(parts->iov_base) + left;
    parts->iov_len -= left;
    const ssize_t n = ::pwritev(fd, parts, count, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      left = 0;
      continue;
    }
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    offset += static_cast<std::size_t>(n);
    left = static_cast<std::size_t>(n);
  }
}

// A written message cannot shrink under the receiver's mapping (which would SIGBUS), nor grow.
// Not F_SEAL_WRITE: it scans every page for pins (19 ms for 1.5 GiB), and only herd writes it.
void seal_message(int fd) noexcept { ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL); }

bool sealed_against_shrinking(int fd) noexcept {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
}

// ---------------------------------------------------------------------------------------------
// Shared memory: counters and the slab, mapped before any child is forked.

enum slot_state : std::uint32_t { slot_free = 0, slot_writing = 1, slot_queued = 2, slot_reading = 3 };

struct shared_slot {
  std::atomic<std::uint32_t> state;
  std::atomic<std::int32_t> owner;  // the process writing or reading it
};

// Two counts in one word, so a put counts itself in with one atomic operation: the messages put
// and not yet taken off the socket (qsize), and of those the ones still in a producer's hands
// (about to be sent, or packed). Each half only grows and shrinks by what was added to it, so
// neither borrows from the other.
struct message_counts {
  static constexpr std::uint64_t one_put = std::uint64_t(1) << 32;
  static std::int64_t queued(std::uint64_t word) noexcept { return static_cast<std::int64_t>(word >> 32); }
  static std::int64_t unsent(std::uint64_t word) noexcept { return static_cast<std::int64_t>(word & 0xffffffffu); }
};

// A process that receives from the channel, and whether it is inside a receive: one that died
// there may have taken a packet off the socket it never counted out.
struct alignas(64) receiver_slot {  // a cache line each: receivers write theirs per packet
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> receiving;
};
constexpr std::size_t receiver_slots = 64;

struct shared_header {
  std::atomic<std::uint64_t> counts;     // message_counts
  receiver_slot receivers[receiver_slots];
  std::atomic<std::uint32_t> untracked_receivers;  // some found the table full: never repair
  std::atomic<std::int64_t> unfinished;  // joinable: put, not yet task_done()
  std::uint32_t slot_count;
  std::uint64_t slot_size;
  std::uint64_t data_offset;
};

static_assert(std::atomic<std::int64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "channels need address-free atomics in shared memory");

class shared_region {
 public:
  shared_region() = default;
  shared_region(std::size_t slots, std::size_t slot_size) {
    const std::size_t table = sizeof(shared_header) + slots * sizeof(shared_slot);
    const std::size_t page = 4096;
    const std::size_t data_offset = (table + page - 1) / page * page;
    size_ = data_offset + slots * slot_size;
    // A memfd, not anonymous memory: a later spawn start method can pass it to a new program.
    unique_fd memory(::memfd_create("herd-channel", MFD_CLOEXEC));
    if (!memory || ::ftruncate(memory.get(), static_cast<off_t>(size_)) != 0)
      throw boost::system::system_error(system_code(errno), "herd: cannot create a channel's shared memory");
    void* base = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, memory.get(), 0);
    if (base == MAP_FAILED)
      throw boost::system::system_error(system_code(errno), "herd: cannot map a channel's shared memory");
    base_ = static_cast<char*>(base);
    auto* h = new (base_) shared_header{};
    h->slot_count = static_cast<std::uint32_t>(slots);
    h->slot_size = slot_size;
    h->data_offset = data_offset;
    for (std::size_t i = 0; i < slots; ++i) new (&slot(i)) shared_slot{};
  }
  shared_region(const shared_region&) = delete;
  shared_region& operator=(const shared_region&) = delete;
  ~shared_region() {
    if (base_) ::munmap(base_, size_);
  }

  shared_header& header() const noexcept { return *reinterpret_cast<shared_header*>(base_); }
  shared_slot& slot(std::size_t i) const noexcept {
    return reinterpret_cast<shared_slot*>(base_ + sizeof(shared_header))[i];
  }
  char* slot_data(std::size_t i) const noexcept {
    return base_ + header().data_offset + i * header().slot_size;
  }

 private:
  char* base_ = nullptr;
  std::size_t size_ = 0;
};

// A private epoll descriptor watching one shared descriptor: Asio waits on it, so the shared
// one never becomes O_NONBLOCK.
struct watcher {
  watcher(const asio::any_io_executor& ex, int watched, std::uint32_t events) : stream(ex) {
    unique_fd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll) throw boost::system::system_error(system_code(errno), "herd: epoll_create1");
    epoll_event event{};
    event.events = events;  // level-triggered: readiness stays until the condition is gone
    event.data.fd = watched;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, watched, &event) != 0)
      throw boost::system::system_error(system_code(errno), "herd: epoll_ctl");
    stream.assign(epoll.get());
    epoll.release();
  }
  asio::posix::stream_descriptor stream;
};

struct waiters {
  std::optional<watcher> receive, send, token, done;
  int native(const std::optional<watcher>& w) { return w ? const_cast<watcher&>(*w).stream.native_handle() : -1; }
};

// ---------------------------------------------------------------------------------------------
// Channels with a packed batch that is not sent yet, in this process.

struct pending_registry {
  std::mutex lock;
  pid_t owner = 0;
  std::vector<channel::state*> channels;
  // channels.size(), readable without the lock: every receive asks, and almost always it is 0.
  // A forked copy may show the parent's count; the locked path then finds the owner stale.
  std::atomic<std::size_t> count{0};
};

pending_registry& pending() {
  static auto* registry = new pending_registry;  // never destroyed: flushed at exit
  return *registry;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

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

  ~state() {
    // What this process packed leaves with it; a channel nobody reads any more cannot hold
    // the destructor for long.
    if (local_.pid == current_pid()) flush_batch(true, clock_type::now() + std::chrono::seconds(5));
    forget_pending();
    if (local_.pid != current_pid()) abandon_waiters();
  }

  local_state& local() {
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

  void abandon_waiters() {
    if (!local_.waits) return;
    waiters* inherited = local_.waits.release();
    for (auto* w : {&inherited->receive, &inherited->send, &inherited->token, &inherited->done})
      if (*w) ::close((*w)->stream.native_handle());
  }

  waiters& waits(const asio::any_io_executor& home) {
    auto& l = local();
    if (!l.waits) l.waits = std::make_unique<waiters>();
    (void)home;
    return *l.waits;
  }

  watcher& receive_watcher(const asio::any_io_executor& home) {
    auto& w = waits(home);
    if (!w.receive) w.receive.emplace(home, receive_fd, EPOLLIN);
    return *w.receive;
  }
  watcher& send_watcher(const asio::any_io_executor& home) {
    auto& w = waits(home);
    if (!w.send) w.send.emplace(home, send_fd, EPOLLOUT);
    return *w.send;
  }
  watcher& token_watcher(const asio::any_io_executor& home) {
    auto& w = waits(home);
    if (!w.token) w.token.emplace(home, tokens.get(), EPOLLIN);
    return *w.token;
  }
  watcher& done_watcher(const asio::any_io_executor& home) {
    auto& w = waits(home);
    if (!w.done) w.done.emplace(home, done.get(), EPOLLIN);
    return *w.done;
  }

  // -- pending batches ------------------------------------------------------------------------

  void remember_pending() {
    static std::once_flag at_exit;
    std::call_once(at_exit, [] {
      // Rule 5, and a batch never waits for a sender that waits: it leaves before herd waits for
      // a child, before a fork (the child must not send it again), as a function child exits,
      // and at this process's exit.
      for (auto moment : {process_moment::before_wait, process_moment::before_fork, process_moment::child_exit})
        add_process_hook(moment, flush_all_channels);
      std::atexit(flush_all_channels);
    });
    auto& r = pending();
    std::lock_guard guard(r.lock);
    if (r.owner != current_pid()) {
      r.channels.clear();
      r.owner = current_pid();
    }
    if (std::find(r.channels.begin(), r.channels.end(), this) == r.channels.end()) r.channels.push_back(this);
    r.count.store(r.channels.size(), std::memory_order_relaxed);
  }

  void forget_pending() noexcept {
    auto& r = pending();
    std::lock_guard guard(r.lock);
    std::erase(r.channels, this);
    r.count.store(r.channels.size(), std::memory_order_relaxed);
  }

  // -- sending --------------------------------------------------------------------------------

  // One packet of `records` messages, blocking or not; waits up to the deadline. Returns success,
  // would_block, timed_out or closed.
  error_code send_packet(const std::string& packet, std::size_t records, int descriptor, bool block,
                         std::optional<clock_type::time_point> deadline) {
    if (send_fd < 0) return errc::closed;
    iovec data{const_cast<char*>(packet.data()), packet.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    if (descriptor >= 0) attach_descriptor(message, control, sizeof control, descriptor);
    for (;;) {
      // Without a deadline a blocking send sleeps in the kernel; with one it polls.
      const int flags = MSG_NOSIGNAL | ((block && !deadline) ? 0 : MSG_DONTWAIT);
      if (::sendmsg(send_fd, &message, flags) >= 0) {
        // In the kernel now: no longer in this producer's hands.
        if (shared) shared->header().counts.fetch_sub(records, std::memory_order_relaxed);
        return {};
      }
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EPIPE || error == ECONNRESET) return errc::closed;
      if (error == EMSGSIZE) return errc::message_too_large;
      if (error == ETOOMANYREFS || error == ENOBUFS) {
        // Too many descriptors in flight (per user), or no memory: epoll would still say
        // writable, so waiting for readiness cannot help. Back off and retry.
        if (!block) return errc::would_block;
        if (deadline && clock_type::now() >= *deadline) return errc::timed_out;
        std::this_thread::sleep_for(milliseconds(1));
        continue;
      }
      if (error != EAGAIN) return system_code(error);
      if (!block) return errc::would_block;
      if (!wait_ready(send_fd, POLLOUT, deadline)) return errc::timed_out;
    }
  }

  static bool wait_ready(int fd, short events, std::optional<clock_type::time_point> deadline) {
    for (;;) {
      const int wait_ms = poll_timeout_until(deadline);
      if (wait_ms == 0) return false;
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, wait_ms);
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return true;  // let the caller's I/O report the problem
    }
  }

  error_code flush_batch(bool block, std::optional<clock_type::time_point> deadline = std::nullopt) {
    auto& l = local_;
    if (l.batch_count == 0) return {};
    error_code ec = send_packet(l.batch, l.batch_count, -1, block, deadline);
    if (ec == errc::would_block || ec == errc::timed_out) return ec;
    // Sent, or lost for good (the channel was closed): either way the batch is gone, and a lost
    // one no longer counts as queued.
    if (ec) uncounted_put(static_cast<std::int64_t>(l.batch_count));
    l.batch.clear();
    l.batch_count = 0;
    forget_pending();
    return ec;
  }

  bool backlogged() const {
    int queued = 0;
    return ::ioctl(send_fd, SIOCOUTQ, &queued) == 0 && queued > backlog_bytes;
  }

  // Puts one encoded message in flight (after any token was taken).
  error_code send_message(outgoing_message& message, bool block, std::optional<clock_type::time_point> deadline) {
    if (!message.spilled()) return send_message(message.bytes, block, deadline);
    if (message.error()) return message.error();
    local();
    if (error_code ec = flush_batch(block, deadline)) return ec;
    return send_packet(memfd_packet(message.length()), 1, message.memory(), block, deadline);
  }

  // The same, for a message encoded in memory.
  error_code send_message(std::string& bytes, bool block, std::optional<clock_type::time_point> deadline) {
    auto& l = local();
    if (bytes.size() > max_inline) {
      if (error_code ec = flush_batch(block, deadline)) return ec;
      return send_out_of_band(bytes, block, deadline);
    }
    const std::size_t cap = std::max<std::size_t>(1, options.batch);
    if (block && options.pack_puts && cap > 1 && (l.batch_count > 0 || backlogged())) {
      // A full batch must leave before this message may join one; if it cannot, this message
      // fails and is not packed.
      if (l.batch_count >= cap || l.batch.size() + record_header + bytes.size() > max_packet) {
        if (error_code ec = flush_batch(block, deadline)) return ec;
      }
      append_inline(l.batch, bytes);
      if (++l.batch_count == 1) remember_pending();
      if (l.batch_count >= cap) {
        // This message is packed: it will be sent, now or by the next flush. Only a closed
        // channel loses it (and the rest of the batch) — reported here.
        error_code ec = flush_batch(block, deadline);
        if (ec == errc::would_block || ec == errc::timed_out) return {};
        // flush_batch counted the lost batch out, this message too: count it in again, for
        // put() counts a message that failed out itself.
        if (ec) counted_put();
        return ec;
      }
      return {};
    }
    if (error_code ec = flush_batch(block, deadline)) return ec;
    std::string packet;
    packet.reserve(record_header + bytes.size());
    append_inline(packet, bytes);
    return send_packet(packet, 1, -1, block, deadline);
  }

  error_code send_out_of_band(const std::string& bytes, bool block, std::optional<clock_type::time_point> deadline) {
    if (auto index = claim_slot(bytes.size())) {
      std::memcpy(shared->slot_data(*index), bytes.data(), bytes.size());
      shared->slot(*index).state.store(slot_queued, std::memory_order_release);
      error_code ec = send_packet(slab_packet(static_cast<std::uint32_t>(*index), bytes.size()), 1, -1, block, deadline);
      if (ec) shared->slot(*index).state.store(slot_free, std::memory_order_release);
      return ec;
    }
    // A memfd of its own: the fastest way without a free slot, for any size. (Messages larger
    // than a slot are in one already: outgoing_message wrote them there as they were encoded.)
    unique_fd memory = make_message_memfd();
    if (!memory) return system_code(errno);
    iovec part{const_cast<char*>(bytes.data()), bytes.size()};
    if (!write_parts(memory.get(), &part, 1, 0)) return system_code(errno);
    seal_message(memory.get());
    return send_packet(memfd_packet(bytes.size()), 1, memory.get(), block, deadline);
  }

  std::optional<std::size_t> claim_slot(std::size_t length) {
    if (!shared) return std::nullopt;
    auto& h = shared->header();
    if (length > h.slot_size) return std::nullopt;
    for (int attempt = 0; attempt < 2; ++attempt) {
      for (std::size_t i = 0; i < h.slot_count; ++i) {
        std::uint32_t expected = slot_free;
        if (shared->slot(i).state.compare_exchange_strong(expected, slot_writing, std::memory_order_acquire)) {
          shared->slot(i).owner.store(current_pid(), std::memory_order_relaxed);
          return i;
        }
      }
      // All busy: take back slots whose writer or reader died holding them.
      for (std::size_t i = 0; i < h.slot_count; ++i) {
        auto& s = shared->slot(i);
        std::uint32_t observed = s.state.load(std::memory_order_acquire);
        if ((observed == slot_writing || observed == slot_reading) && process_gone(s.owner.load()))
          s.state.compare_exchange_strong(observed, slot_free);
      }
    }
    return std::nullopt;
  }

  // -- tokens (maxsize) -----------------------------------------------------------------------

  bool bounded() const { return static_cast<bool>(tokens); }

  // Takes one token without waiting.
  bool try_take_token() {
    std::uint64_t value;
    for (;;) {
      if (::read(tokens.get(), &value, sizeof value) == sizeof value) return true;
      if (errno != EINTR) return false;
    }
  }

  void give_tokens(std::uint64_t count) {
    if (!bounded() || count == 0) return;
    while (::write(tokens.get(), &count, sizeof count) < 0 && errno == EINTR) {
    }
  }

  error_code take_token(bool block, std::optional<clock_type::time_point> deadline) {
    while (!try_take_token()) {
      if (closed.load() || is_shut_down()) return errc::closed;
      if (!block) return errc::would_block;
      // Slots come back as receivers take messages; a closed queue must not leave us asleep.
      const auto slice = clock_type::now() + milliseconds(50);
      if (!wait_ready(tokens.get(), POLLIN, deadline ? std::min(*deadline, slice) : slice) && deadline &&
          clock_type::now() >= *deadline)
        return errc::timed_out;
    }
    return {};
  }

  static bool hung_up(int fd) {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
  }

  bool is_shut_down() const {
    // A queue closed by any process: sends fail; look without sending.
    if (send_fd < 0) return true;
    pollfd p{send_fd, POLLOUT, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0;
  }

  // Counts `n` messages in before they are sent (a receiver may take them at once); a send that
  // failed counts them out again.
  void counted_put(std::int64_t n = 1) {
    if (!shared) return;
    shared->header().counts.fetch_add(static_cast<std::uint64_t>(n) * (message_counts::one_put + 1),
                                      std::memory_order_relaxed);
    if (joinable && shared->header().unfinished.fetch_add(n, std::memory_order_acq_rel) == 0) {
      // Work is pending again: forget a stale "all done".
      std::uint64_t drained;
      while (::read(done.get(), &drained, sizeof drained) < 0 && errno == EINTR) {
      }
    }
  }

  void uncounted_put(std::int64_t n = 1) {
    if (!shared) return;
    shared->header().counts.fetch_sub(static_cast<std::uint64_t>(n) * (message_counts::one_put + 1),
                                      std::memory_order_relaxed);
    if (joinable) shared->header().unfinished.fetch_sub(n, std::memory_order_acq_rel);
  }

  error_code put(outgoing_message& message, bool block, std::optional<clock_type::time_point> deadline) {
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

  // -- receiving ------------------------------------------------------------------------------

  // This process's entry in the receivers' table, claimed on its first receive; null if the
  // table is full (then a loss of this process's cannot be repaired: see channel::size).
  receiver_slot* receiver(local_state& l) {
    if (l.receiver_claimed || !shared) return l.receiver;
    l.receiver_claimed = true;
    for (receiver_slot& slot : shared->header().receivers) {
      std::int32_t holder = slot.pid.load(std::memory_order_relaxed);
      if (holder == l.pid) return l.receiver = &slot;  // a pid reused after a death: the slot is ours
      if ((holder == 0 || (slot.receiving.load() == 0 && process_gone(holder))) &&
          slot.pid.compare_exchange_strong(holder, l.pid)) {
        slot.receiving.store(0);
        return l.receiver = &slot;
      }
    }
    shared->header().untracked_receivers.store(1);
    return nullptr;
  }

  // Takes one packet off the socket into the inbox. Returns success, would_block, closed,
  // bad_message or a system error.
  error_code receive_packet(bool block) {
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

  error_code take_packet(local_state& l, bool block) {
    if (l.packet.size() < max_packet) l.packet.resize(max_packet);
    iovec data{l.packet.data(), l.packet.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_descriptors_per_packet)];
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t n;
    for (;;) {
      n = ::recvmsg(receive_fd, &message, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
      if (n >= 0) break;
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return errc::would_block;
      if (errno == ECONNRESET) return errc::closed;
      return system_code(errno);
    }
    const std::vector<unique_fd> descriptors = received_descriptors(message);
    // End of file, or a zero-length packet written raw into the socket (every packet herd sends
    // holds a record): only the end of file comes with a hang-up.
    if (n == 0 && descriptors.empty()) return hung_up(receive_fd) ? errc::closed : errc::bad_message;
    if ((message.msg_flags & MSG_TRUNC) != 0) return errc::bad_message;
    std::vector<record>& records = l.records;
    records.clear();
    if ((message.msg_flags & MSG_CTRUNC) != 0) {
      // The kernel had no free descriptor for the memfd a large message came in, and dropped it
      // with the packet: that message is lost. Counted out, and reported as what it is (EMFILE).
      if (!descriptors.empty() ||
          !parse_packet(std::string_view(l.packet.data(), static_cast<std::size_t>(n)), 1, records))
        return errc::bad_message;
      count_out(1);
      records.clear();
      return system_code(EMFILE);
    }
    // More records than any sender of this channel packs is no packet of herd's: taking them
    // would give back more maxsize tokens than were taken.
    if (!parse_packet(std::string_view(l.packet.data(), static_cast<std::size_t>(n)), descriptors.size(), records) ||
        records.size() > std::max<std::size_t>(1, options.batch))
      return errc::bad_message;
    // Counted out the moment they leave the kernel, before any is copied: a process killed while
    // it copies a large message loses that message, not the queue's count of it.
    count_out(records.size());
    std::size_t next_descriptor = 0;
    std::size_t taken = 0;
    error_code problem;
    for (const record& r : records) {
      switch (r.kind) {
        case record_kind::inline_bytes:
          l.inbox.push_back({r.bytes, {}, false});
          ++taken;
          break;
        case record_kind::slab:
          if (error_code ec = take_from_slot(r.slot, r.length, l)) problem = ec;
          else ++taken;
          break;
        case record_kind::memfd:
          if (error_code ec = take_from_memfd(descriptors[next_descriptor++].get(), r.length, l)) problem = ec;
          else ++taken;
          break;
      }
    }
    return taken == 0 && problem ? problem : error_code();
  }

  // Messages taken off the socket leave qsize() and give back their maxsize places: once per
  // packet, not per get (the counter is shared with the producers, and a write per message made
  // its cache line bounce).
  void count_out(std::size_t n) {
    give_tokens(n);
    if (shared && n > 0) shared->header().counts.fetch_sub(n * message_counts::one_put, std::memory_order_relaxed);
  }

  // A drained queue whose count says more than its producers hold lost count-outs: receivers
  // SIGKILLed inside a receive. The count is set right (and the lost maxsize places given back)
  // only while no living process is inside a receive, for one that is may hold a packet it has
  // not counted out yet. Returns the counts to report.
  std::uint64_t repaired_counts(std::uint64_t observed) {
    const std::int64_t queued = message_counts::queued(observed);
    const std::int64_t unsent = message_counts::unsent(observed);
    int in_socket = 0;
    if (queued <= unsent || receive_fd < 0 || ::ioctl(receive_fd, SIOCINQ, &in_socket) != 0 || in_socket != 0)
      return observed;
    // The socket is empty: what is queued is what producers hold, whatever happens next.
    const std::uint64_t drained = static_cast<std::uint64_t>(unsent) * (message_counts::one_put + 1);
    // A receiver without a mark could be inside a receive unseen.
    if (shared->header().untracked_receivers.load() != 0) return drained;
    std::array<receiver_slot*, receiver_slots> lost{};
    std::size_t dead = 0;
    for (receiver_slot& slot : shared->header().receivers) {
      if (slot.receiving.load() == 0) continue;
      if (!process_gone(slot.pid.load())) return drained;  // alive and inside: repair later
      lost[dead++] = &slot;
    }
    // A producer or receiver that moved since `observed` changed the word: then nothing changes.
    if (!shared->header().counts.compare_exchange_strong(observed, drained)) return drained;
    give_tokens(static_cast<std::uint64_t>(queued - unsent));
    for (std::size_t i = 0; i < dead; ++i) lost[i]->receiving.store(0);  // their loss is counted now
    return drained;
  }

  error_code take_from_slot(std::uint32_t index, std::uint64_t length, local_state& l) {
    if (!shared || index >= shared->header().slot_count || length > shared->header().slot_size)
      return errc::bad_message;
    auto& s = shared->slot(index);
    std::uint32_t expected = slot_queued;
    if (!s.state.compare_exchange_strong(expected, slot_reading, std::memory_order_acquire)) return errc::bad_message;
    s.owner.store(current_pid(), std::memory_order_relaxed);
    std::string message = std::move(l.spare);
    message.assign(shared->slot_data(index), length);
    push_owned(l, received_message(std::move(message)));
    s.state.store(slot_free, std::memory_order_release);
    return {};
  }

  static error_code take_from_memfd(int fd, std::uint64_t length, local_state& l) {
    const auto size = file_size(fd);
    if (!size || *size < length) return errc::bad_message;
    // herd's senders seal their memfds: mapped, the message is decoded where it lies, with no
    // buffer to allocate, zero and fill (for 1.5 GiB that was 2 of the 4 passes over fresh
    // memory a message cost). MAP_POPULATE maps its pages in one call, not one fault per 16.
    if (length > 0 && sealed_against_shrinking(fd)) {
      void* mapping = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
      if (mapping != MAP_FAILED) {
        push_owned(l, received_message(static_cast<const char*>(mapping), length));
        return {};
      }
    }
    // A memfd that may shrink under a mapping (not herd's), or no address space: read it.
    std::string message = std::move(l.spare);
    message.resize(length);
    if (!read_whole(fd, message.data(), length)) return errc::bad_message;
    push_owned(l, received_message(std::move(message)));
    return {};
  }

  static void push_owned(local_state& l, received_message&& message) {
    l.inbox.push_back({{}, std::move(message), true});
  }

  // Hands the next message of the inbox to `sink`: empty if there is none, else what the sink
  // said. A buffer the sink leaves is kept for the next large message.
  std::optional<error_code> take_from_inbox(const message_sink& sink) {
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
    keep_spare(owned.release_buffer());  // a mapping is unmapped
    return ec;
  }

  // Keeps a large message's buffer for the next one: one spare at most, and none larger than a
  // slab slot (a 1 GiB message's buffer is let go).
  void keep_spare(std::string&& bytes) noexcept {
    auto& l = local();
    if (bytes.capacity() > max_inline && bytes.capacity() <= options.slab_slot_size &&
        bytes.capacity() > l.spare.capacity())
      l.spare = std::move(bytes);
  }

  // A message from the inbox or the socket, never waiting: what the sink said, would_block or
  // an error.
  error_code try_receive(const message_sink& sink) {
    for (;;) {
      if (auto taken = take_from_inbox(sink)) return *taken;
      if (error_code ec = receive_packet(false)) return ec;
    }
  }

  error_code get(const message_sink& sink, bool block, std::optional<clock_type::time_point> deadline) {
    if (auto taken = take_from_inbox(sink)) return *taken;
    // A blocking receive polls for a moment before it sleeps: a wake-up costs ~20 µs on a VM
    // (measured: a pipe round trip fell from 43 µs to 3.4 µs when both sides poll for 50 µs).
    auto poll_until = clock_type::now();
    if (block) poll_until += options.spin;
    if (deadline) poll_until = std::min(poll_until, *deadline);
    for (;;) {
      const bool polling = clock_type::now() < poll_until;
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
};

// ---------------------------------------------------------------------------------------------
// channel

message_sink message_sink::into(received_message& out) noexcept {
  return {[](void* context, std::string_view bytes, received_message* owned) -> error_code {
            auto& target = *static_cast<received_message*>(context);
            if (owned) target = std::move(*owned);
            else target = received_message(std::string(bytes));
            return {};
          },
          &out};
}

// ---------------------------------------------------------------------------------------------
// outgoing_message, received_message

outgoing_message::outgoing_message(outgoing_message&& other) noexcept
    : bytes(std::move(other.bytes)),
      memory_(std::exchange(other.memory_, -1)),
      written_(std::exchange(other.written_, 0)),
      error_(std::exchange(other.error_, error_code())) {}

outgoing_message::~outgoing_message() {
  if (memory_ >= 0) ::close(memory_);
}

std::size_t outgoing_message::spill(void* self, const void* data, std::size_t size) noexcept {
  auto& message = *static_cast<outgoing_message*>(self);
  if (!message.error_ && message.memory_ < 0) {
    message.memory_ = make_message_memfd().release();
    if (message.memory_ < 0) message.error_ = system_code(errno);
  }
  if (!message.error_) {
    // What is staged, then the new bytes straight from the value: one call, no copy.
    iovec parts[2] = {{message.bytes.data(), message.bytes.size()}, {const_cast<void*>(data), size}};
    if (write_parts(message.memory_, parts, 2, message.written_)) message.written_ += message.bytes.size() + size;
    else message.error_ = system_code(errno);
  }
  message.bytes.clear();  // written, or lost with the message (its error says why)
  return spill_staging;
}

void outgoing_message::finish() noexcept {
  if (memory_ < 0 || error_) return;
  iovec part{bytes.data(), bytes.size()};
  if (write_parts(memory_, &part, 1, written_)) written_ += bytes.size();
  else error_ = system_code(errno);
  bytes.clear();
  seal_message(memory_);
}

received_message::received_message(received_message&& other) noexcept
    : buffer_(std::move(other.buffer_)),
      mapping_(std::exchange(other.mapping_, nullptr)),
      length_(std::exchange(other.length_, 0)) {
  other.buffer_.clear();
}

received_message& received_message::operator=(received_message&& other) noexcept {
  if (this != &other) {
    unmap();
    buffer_ = std::move(other.buffer_);
    other.buffer_.clear();
    mapping_ = std::exchange(other.mapping_, nullptr);
    length_ = std::exchange(other.length_, 0);
  }
  return *this;
}

received_message::~received_message() { unmap(); }

void received_message::unmap() noexcept {
  if (mapping_) ::munmap(const_cast<char*>(mapping_), length_);
  mapping_ = nullptr;
  length_ = 0;
}

std::string received_message::release_buffer() noexcept {
  unmap();
  return std::move(buffer_);
}

channel::channel(std::unique_ptr<state> s) : state_(std::move(s)) {}
channel::~channel() = default;

namespace {

unique_fd make_eventfd(unsigned initial, int flags) {
  unique_fd fd(::eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK | flags));
  if (!fd) throw boost::system::system_error(system_code(errno), "herd: eventfd");
  return fd;
}

std::array<unique_fd, 2> make_socketpair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    throw boost::system::system_error(system_code(errno), "herd: socketpair");
  return {unique_fd(move_above_stdio(fds[0])), unique_fd(move_above_stdio(fds[1]))};
}

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
  const std::size_t cap = std::max<std::size_t>(1, s.options.batch);
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
    const bool out_of_band = bytes.size() > max_inline;
    if (out_of_band || in_packet == cap || packet.size() + record_header + bytes.size() > max_packet) {
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
    if (state_->local_.pid != current_pid()) return {};
    return state_->flush_batch(true);
  } catch (...) {
    return errc::closed;
  }
}

void channel::close() noexcept {
  auto& s = *state_;
  if (s.local_.pid == current_pid()) s.flush_batch(true);  // rule 5
  s.closed = true;
  if (s.is_queue) {
    // For every process at once: senders get EPIPE; receivers drain, then read end of file.
    if (s.send_fd >= 0) ::shutdown(s.send_fd, SHUT_RDWR);
  } else {
    s.forget_pending();
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
  // count it out: on a drained queue that shows, and is repaired.
  const std::uint64_t counts = s.repaired_counts(s.shared->header().counts.load());
  return static_cast<std::size_t>(std::max<std::int64_t>(0, message_counts::queued(counts)));
}

error_code channel::task_done() noexcept {
  auto& s = *state_;
  if (!s.joinable) return errc::invalid_argument;
  auto& unfinished = s.shared->header().unfinished;
  std::int64_t current = unfinished.load(std::memory_order_acquire);
  do {
    if (current <= 0) return errc::invalid_argument;  // Python: "task_done() called too many times"
  } while (!unfinished.compare_exchange_weak(current, current - 1, std::memory_order_acq_rel));
  if (current == 1) {
    const std::uint64_t one = 1;
    while (::write(s.done.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  return {};
}

error_code channel::join(std::optional<milliseconds> timeout) {
  auto& s = *state_;
  if (!s.joinable) return errc::invalid_argument;
  flush_all_channels();
  const auto deadline = deadline_after(timeout);
  while (s.shared->header().unfinished.load(std::memory_order_acquire) > 0) {
    // "All done" is an eventfd that may be stale for a moment (see counted_put): sleep on it in
    // short slices and look at the counter again.
    const auto slice = clock_type::now() + milliseconds(20);
    state::wait_ready(s.done.get(), POLLIN, deadline ? std::min(*deadline, slice) : slice);
    if (deadline && clock_type::now() >= *deadline &&
        s.shared->header().unfinished.load(std::memory_order_acquire) > 0)
      return errc::timed_out;
  }
  return {};
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
    } else if (message.bytes.size() > max_inline) {
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
    auto& unfinished = channel_access::state_of(*owner).shared->header().unfinished;
    if (!started) {
      started = true;
      op.reset_cancellation_state(asio::enable_total_cancellation());
      backstop = std::make_shared<timer>(home);
      if (unfinished.load(std::memory_order_acquire) == 0) {
        const asio::any_io_executor ex = home;
        return asio::post(ex, std::move(op));
      }
    } else {
      backstop->cancel();
      if (ec && ec != asio::error::operation_aborted) return op.complete(ec);
      if (cancelled(op)) return op.complete(asio::error::operation_aborted);
      // An abort the caller did not ask for came from the backstop below: look again.
      if (unfinished.load(std::memory_order_acquire) == 0) return op.complete(error_code());
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

void flush_all_channels() noexcept {
  auto& r = pending();
  if (r.count.load(std::memory_order_relaxed) == 0) return;
  std::vector<channel::state*> channels;
  {
    std::lock_guard guard(r.lock);
    if (r.owner != current_pid()) {
      r.channels.clear();
      r.count.store(0, std::memory_order_relaxed);
      r.owner = current_pid();
    }
    channels = r.channels;
  }
  for (auto* s : channels) {
    try {
      s->flush_batch(true);
    } catch (...) {
    }
  }
}

}  // namespace herd::detail
