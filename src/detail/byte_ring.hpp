// A single-producer single-consumer ring of records in shared memory: one process writes, one
// reads, no lock and no system call (a pool worker's inbox and outbox; docs/design/decisions.md,
// "Pools"). A record is a length and flags, then its bytes, 8-byte aligned; it never wraps around
// the end (a wrap marker sends the reader back to the start). Head and tail count bytes forever.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace herd::detail {

struct ring_indexes {
  alignas(64) std::atomic<std::uint64_t> head{0};  // bytes published by the writer
  alignas(64) std::atomic<std::uint64_t> tail{0};  // bytes released by the reader
};

class byte_ring {
 public:
  static constexpr std::size_t header_size = 8;

  struct record {
    std::uint32_t flags;
    std::string_view bytes;
  };

  byte_ring() = default;
  /// `capacity`: a power of two, at least 64.
  byte_ring(ring_indexes* indexes, char* data, std::size_t capacity) noexcept;

  /// The largest record: half the ring, so that one always fits once the reader has caught up.
  std::size_t max_record() const noexcept { return capacity_ / 2 - header_size; }

  // The writer's side.
  /// Room for a record of `size` bytes (<= max_record()), or null while the ring is too full.
  /// Nothing is visible to the reader until commit().
  char* reserve(std::size_t size) noexcept;
  /// Publishes the reserved record with `flags`.
  void commit(std::uint32_t flags) noexcept;

  // The reader's side.
  /// The oldest record, if any; it stays valid until pop().
  std::optional<record> front() noexcept;
  void pop() noexcept;
  /// Nothing published is left to read.
  bool empty() const noexcept;

 private:
  ring_indexes* indexes_ = nullptr;
  char* data_ = nullptr;
  std::size_t capacity_ = 0;
  // The writer's: where the reserved record starts, its size.
  std::uint64_t reserved_at_ = 0;
  std::size_t reserved_size_ = 0;
  // The reader's: where the front record ends.
  std::uint64_t front_end_ = 0;
};

}  // namespace herd::detail
