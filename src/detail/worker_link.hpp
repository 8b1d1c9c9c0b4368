// The link between a pool and one of its workers: one shared mapping holding the control words
// and a ring each way (tasks in, results out), and two eventfds to wake a side that sleeps. Each
// ring has one writer and one reader, so nothing is locked; a side only makes a system call to
// wake the other when that one said it sleeps. Messages larger than a ring's record travel in
// fragments. Which tasks the worker is running is in the control words, so a worker's death
// fails exactly those (pool_scheduler.hpp decides what becomes of them).
#pragma once

#include "byte_ring.hpp"
#include "unique_fd.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace herd::detail {

/// At most this many tasks run at once in one worker (coroutine tasks).
constexpr std::size_t max_worker_concurrency = 64;
/// Tasks the parent can be withdrawing from one worker at once (cancelled before they start).
constexpr std::size_t withdraw_slots = 64;

struct link_control {
  ring_indexes to_worker;
  ring_indexes to_parent;
  alignas(64) std::atomic<std::uint32_t> worker_sleeping{0};  // set before it waits on its eventfd
  alignas(64) std::atomic<std::uint32_t> parent_armed{0};     // wants a wake-up for a result
  std::atomic<std::uint32_t> parent_wants_room{0};            // wants a wake-up when tasks are taken
  std::atomic<std::uint32_t> ready{0};                        // the worker's initializer has returned
  alignas(64) std::atomic<std::uint64_t> running[max_worker_concurrency];  // task ids; 0: a free slot
  std::atomic<std::int64_t> started_ns[max_worker_concurrency];            // steady_clock, when each began
  std::atomic<std::uint64_t> withdrawn[withdraw_slots];                    // task ids to skip; 0: free
};

enum class link_kind : std::uint32_t {
  task = 1,   // parent -> worker: run `task`; a = the trampoline, b = the function pointer (or 0)
  quit,       // parent -> worker: leave once what is sent is done
  value,      // worker -> parent: `task` returned; a = its run time in ns; the payload is the value
  exception,  // worker -> parent: `task` threw; the payload is an exception record (outcome.hpp)
  skipped,    // worker -> parent: `task` was withdrawn and did not run
};

struct link_header {
  std::uint64_t task = 0;
  link_kind kind = link_kind::task;
  std::uint32_t reserved = 0;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
};

/// One link's shared memory, mapped by either side.
class link_memory {
 public:
  link_memory() = default;
  /// Makes a link with two rings of `ring_capacity` bytes (a power of two) in a memfd, mapped in
  /// this process; release_memory() gives the memfd, to hand to the worker.
  static link_memory create(std::size_t ring_capacity);
  /// Maps the link of `memfd` (the worker's side).
  static link_memory map(int memfd, std::size_t ring_capacity);
  link_memory(link_memory&& other) noexcept;
  link_memory& operator=(link_memory&& other) noexcept;
  ~link_memory();

  link_control& control() const noexcept { return *static_cast<link_control*>(base_); }
  byte_ring& to_worker() noexcept { return to_worker_; }
  byte_ring& to_parent() noexcept { return to_parent_; }
  /// Hands over the memfd (the worker maps it); the mapping stays.
  int release_memory() noexcept { return memory_.release(); }
  /// Keeps later forks (other children, other workers) from inheriting this mapping.
  void keep_from_forks() noexcept;

 private:
  void layout(std::size_t ring_capacity) noexcept;
  static std::size_t mapping_size(std::size_t ring_capacity) noexcept;

  unique_fd memory_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  byte_ring to_worker_, to_parent_;
};

/// Writes messages into a ring, in fragments where a message is larger than a record.
/// `try_write` never waits: what does not fit stays pending until `pump()` finds room.
class message_writer {
 public:
  explicit message_writer(byte_ring* ring = nullptr) noexcept : ring_(ring) {}
  /// Queues the message and writes what fits now; true if all of it (and all before it) went.
  bool write(const link_header& header, std::string_view payload);
  /// Writes more of what is pending; true once nothing is.
  bool pump();
  bool idle() const noexcept { return pending_.empty(); }

 private:
  // Writes fragments of `message` from `offset` while they fit; true once all of it went.
  bool write_fragments(std::string_view message, std::size_t& offset) noexcept;

  byte_ring* ring_;
  std::deque<std::string> pending_;
  std::size_t offset_ = 0;  // of pending_.front()
};

/// Reads whole messages from a ring, joining fragments.
class message_reader {
 public:
  explicit message_reader(byte_ring* ring = nullptr) noexcept : ring_(ring) {}
  /// The next whole message, if one has arrived (valid until release()); a fragment of a larger
  /// one is taken and kept meanwhile. False if none, or only a part, has arrived.
  bool next(link_header& header, std::string_view& payload);
  /// Lets go of the message next() returned.
  void release() noexcept;

 private:
  byte_ring* ring_;
  std::string joined_;
  bool in_ring_ = false;
  bool whole_in_joined_ = false;
};

}  // namespace herd::detail
