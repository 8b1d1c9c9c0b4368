// The memory every process holding a channel shares, mapped before any child is forked: the
// counts (qsize, unsent, unfinished tasks), the table of receivers, and the large-message slab
// (rule 3 of src/detail/channel_state.hpp). Here are the counting rules — what a put, a send, a
// receive and a task_done change, and how a count a dead receiver left wrong is repaired; the
// repair's decision is a pure function (decide_count_repair), tested without processes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herd::detail {

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
  /// `n` messages in both halves: what a put adds.
  static std::uint64_t puts(std::int64_t n) noexcept { return static_cast<std::uint64_t>(n) * (one_put + 1); }
  /// More queued than producers hold: on a drained socket, count-outs were lost.
  static bool may_hide_lost_count_outs(std::uint64_t word) noexcept { return queued(word) > unsent(word); }
  /// The word once the socket is empty: what is queued is what producers hold.
  static std::uint64_t drained(std::uint64_t word) noexcept { return puts(unsent(word)); }
};

/// What channel::size does with the count it read (decide_count_repair).
enum class count_repair {
  report_observed,  // nothing can be lost: report the word as read
  report_drained,   // the socket is empty: report what producers hold, but set nothing, for a
                    // receiver may be inside a receive with a packet it has not counted out yet
  repair,           // set the word to drained (CAS) and give the lost maxsize places back
};

/// The rule: a drained queue whose count says more than its producers hold lost count-outs
/// (receivers SIGKILLed inside a receive). It is set right only while no living process is
/// inside a receive and no receiver is untracked (one without a mark could be in there unseen).
/// Pure; the caller need not look at what an earlier input already decides (socket_empty only
/// if may_hide_lost_count_outs, the receivers only if the socket is empty).
count_repair decide_count_repair(std::uint64_t observed, bool socket_empty, bool untracked_receivers,
                                 bool live_receiver_inside) noexcept;

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
  /// Maps a fresh region with `slots` slab slots of `slot_size` bytes. Throws.
  shared_region(std::size_t slots, std::size_t slot_size);
  shared_region(const shared_region&) = delete;
  shared_region& operator=(const shared_region&) = delete;
  ~shared_region();

  shared_header& header() const noexcept { return *reinterpret_cast<shared_header*>(base_); }

  // -- counts ---------------------------------------------------------------------------------

  /// `n` messages put, counted in before they are sent (a receiver may take them at once).
  void count_put(std::int64_t n) noexcept;
  /// `n` messages counted in whose send failed for good.
  void uncount_put(std::int64_t n) noexcept;
  /// `n` messages in the kernel now: no longer in a producer's hands.
  void count_sent(std::size_t n) noexcept;
  /// `n` messages taken off the socket: they leave qsize.
  void count_taken(std::size_t n) noexcept;

  /// joinable: `n` more tasks unfinished; true if there were none (a stale "all done" must go).
  bool add_unfinished(std::int64_t n) noexcept;
  void remove_unfinished(std::int64_t n) noexcept;
  /// Counts one task done. Returns how many were unfinished before: 0 means none was, and
  /// nothing changed (Python: "task_done() called too many times"); 1, that all are done now.
  std::int64_t finish_task() noexcept;
  std::int64_t unfinished() const noexcept;

  struct repaired {
    std::uint64_t counts;  // the word to report
    std::uint64_t lost;    // maxsize places to give back
  };
  /// Applies decide_count_repair to `observed` (socket_empty: as it says) and, on repair, sets
  /// the word and clears the marks of the dead receivers whose loss it counts.
  repaired repair_counts(std::uint64_t observed, bool socket_empty) noexcept;

  // -- receivers ------------------------------------------------------------------------------

  /// `pid`'s entry in the receivers' table; null if the table is full (then marked untracked:
  /// a loss of this process's cannot be repaired).
  receiver_slot* claim_receiver(std::int32_t pid) noexcept;

  // -- the slab -------------------------------------------------------------------------------

  /// Copies `bytes` into a free slot (taking back slots whose writer or reader died) and marks
  /// it queued; empty if none is free or the message does not fit a slot.
  std::optional<std::uint32_t> put_in_slot(std::string_view bytes) noexcept;
  /// Frees a slot whose packet could not be sent.
  void release_slot(std::uint32_t index) noexcept;
  /// Copies the message of `length` bytes out of queued slot `index` into `out` (reusing its
  /// storage) and frees the slot. False (and `out` untouched) if no such message waits there.
  bool take_from_slot(std::uint32_t index, std::uint64_t length, std::string& out);

 private:
  shared_slot& slot(std::size_t i) const noexcept {
    return reinterpret_cast<shared_slot*>(base_ + sizeof(shared_header))[i];
  }
  char* slot_data(std::size_t i) const noexcept { return base_ + header().data_offset + i * header().slot_size; }
  std::optional<std::uint32_t> claim_slot(std::size_t length) noexcept;

  char* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace herd::detail
