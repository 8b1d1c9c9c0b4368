#include "byte_ring.hpp"

#include <cstring>

namespace herd::detail {
namespace {

constexpr std::uint32_t wrap_marker = 0xffffffffu;

constexpr std::size_t rounded(std::size_t n) noexcept { return (n + 7) & ~std::size_t(7); }

}  // namespace

byte_ring::byte_ring(ring_indexes* indexes, char* data, std::size_t capacity) noexcept
    : indexes_(indexes), data_(data), capacity_(capacity) {}

char* byte_ring::reserve(std::size_t size) noexcept {
  const std::uint64_t head = indexes_->head.load(std::memory_order_relaxed);
  const std::uint64_t tail = indexes_->tail.load(std::memory_order_acquire);
  const std::size_t need = header_size + rounded(size);
  const std::size_t at = static_cast<std::size_t>(head & (capacity_ - 1));
  const std::size_t to_end = capacity_ - at;
  // A record that does not fit before the end starts over at the beginning, after a marker.
  const std::size_t skip = need > to_end ? to_end : 0;
  if (capacity_ - (head - tail) < skip + need) return nullptr;
  if (skip != 0) {
    const std::uint32_t marker[2] = {wrap_marker, 0};
    std::memcpy(data_ + at, marker, sizeof marker);
  }
  reserved_at_ = head + skip;
  reserved_size_ = size;
  return data_ + (reserved_at_ & (capacity_ - 1)) + header_size;
}

void byte_ring::commit(std::uint32_t flags) noexcept {
  const std::uint32_t header[2] = {static_cast<std::uint32_t>(reserved_size_), flags};
  std::memcpy(data_ + (reserved_at_ & (capacity_ - 1)), header, sizeof header);
  indexes_->head.store(reserved_at_ + header_size + rounded(reserved_size_), std::memory_order_release);
}

std::optional<byte_ring::record> byte_ring::front() noexcept {
  std::uint64_t tail = indexes_->tail.load(std::memory_order_relaxed);
  const std::uint64_t head = indexes_->head.load(std::memory_order_acquire);
  for (;;) {
    if (tail == head) return std::nullopt;
    const char* at = data_ + (tail & (capacity_ - 1));
    std::uint32_t header[2];
    std::memcpy(header, at, sizeof header);
    if (header[0] == wrap_marker) {
      tail += capacity_ - (tail & (capacity_ - 1));
      indexes_->tail.store(tail, std::memory_order_release);
      continue;
    }
    front_end_ = tail + header_size + rounded(header[0]);
    return record{header[1], std::string_view(at + header_size, header[0])};
  }
}

void byte_ring::pop() noexcept { indexes_->tail.store(front_end_, std::memory_order_release); }

bool byte_ring::empty() const noexcept {
  return indexes_->tail.load(std::memory_order_acquire) == indexes_->head.load(std::memory_order_acquire);
}

}  // namespace herd::detail
