#include "worker_link.hpp"

#include "descriptors.hpp"

#include <herd/error.hpp>

#include <cerrno>
#include <cstring>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

namespace herd::detail {
namespace {

constexpr std::uint32_t more_fragments = 1;
constexpr std::size_t control_size = (sizeof(link_control) + 4095) & ~std::size_t(4095);

[[noreturn]] void fail(const char* what) {
  throw boost::system::system_error(error_code(errno, boost::system::system_category()),
                                    std::string("herd: pool worker link: ") + what);
}

}  // namespace

std::size_t link_memory::mapping_size(std::size_t ring_capacity) noexcept {
  return control_size + 2 * ring_capacity;
}

link_memory link_memory::create(std::size_t ring_capacity) {
  link_memory link;
  link.memory_.reset(move_above_stdio(::memfd_create("herd-pool-link", MFD_CLOEXEC)));
  if (!link.memory_) fail("memfd_create");
  link.size_ = mapping_size(ring_capacity);
  if (::ftruncate(link.memory_.get(), static_cast<off_t>(link.size_)) != 0) fail("ftruncate");
  link.base_ = ::mmap(nullptr, link.size_, PROT_READ | PROT_WRITE, MAP_SHARED, link.memory_.get(), 0);
  if (link.base_ == MAP_FAILED) {
    link.base_ = nullptr;
    fail("mmap");
  }
  new (link.base_) link_control();
  link.layout(ring_capacity);
  return link;
}

link_memory link_memory::map(int memfd, std::size_t ring_capacity) {
  link_memory link;
  link.size_ = mapping_size(ring_capacity);
  link.base_ = ::mmap(nullptr, link.size_, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (link.base_ == MAP_FAILED) {
    link.base_ = nullptr;
    fail("mmap");
  }
  link.layout(ring_capacity);
  return link;
}

void link_memory::layout(std::size_t ring_capacity) noexcept {
  char* rings = static_cast<char*>(base_) + control_size;
  to_worker_ = byte_ring(&control().to_worker, rings, ring_capacity);
  to_parent_ = byte_ring(&control().to_parent, rings + ring_capacity, ring_capacity);
}

link_memory::link_memory(link_memory&& other) noexcept
    : memory_(std::move(other.memory_)),
      base_(std::exchange(other.base_, nullptr)),
      size_(other.size_),
      to_worker_(other.to_worker_),
      to_parent_(other.to_parent_) {}

link_memory& link_memory::operator=(link_memory&& other) noexcept {
  if (this == &other) return *this;
  link_memory old(std::move(*this));  // unmapped as it goes
  memory_ = std::move(other.memory_);
  base_ = std::exchange(other.base_, nullptr);
  size_ = other.size_;
  to_worker_ = other.to_worker_;
  to_parent_ = other.to_parent_;
  return *this;
}

link_memory::~link_memory() {
  if (base_) ::munmap(base_, size_);
}

void link_memory::keep_from_forks() noexcept {
  if (base_) ::madvise(base_, size_, MADV_DONTFORK);
}

bool message_writer::write(const link_header& header, std::string_view payload) {
  const std::size_t size = sizeof header + payload.size();
  if (pending_.empty() && size <= ring_->max_record()) {
    if (char* at = ring_->reserve(size)) {
      std::memcpy(at, &header, sizeof header);
      if (!payload.empty()) std::memcpy(at + sizeof header, payload.data(), payload.size());
      ring_->commit(0);
      return true;
    }
  }
  std::string& message = pending_.emplace_back();
  message.reserve(size);
  message.append(reinterpret_cast<const char*>(&header), sizeof header);
  message.append(payload);
  return pump();
}

bool message_writer::pump() {
  while (!pending_.empty()) {
    if (!write_fragments(pending_.front(), offset_)) return false;
    pending_.pop_front();
    offset_ = 0;
  }
  return true;
}

bool message_writer::write_fragments(std::string_view message, std::size_t& offset) noexcept {
  while (offset < message.size()) {
    const std::size_t part = std::min(message.size() - offset, ring_->max_record());
    char* at = ring_->reserve(part);
    if (!at) return false;
    std::memcpy(at, message.data() + offset, part);
    offset += part;
    ring_->commit(offset < message.size() ? more_fragments : 0);
  }
  return true;
}

bool message_reader::next(link_header& header, std::string_view& payload) {
  for (;;) {
    const auto record = ring_->front();
    if (!record) return false;
    if (record->flags & more_fragments) {
      joined_.append(record->bytes);
      ring_->pop();
      continue;
    }
    std::string_view whole = record->bytes;
    if (!joined_.empty()) {
      joined_.append(record->bytes);
      ring_->pop();
      whole = joined_;
      whole_in_joined_ = true;
    } else {
      in_ring_ = true;
    }
    if (whole.size() < sizeof header) {  // cannot happen between herd's own two sides
      release();
      continue;
    }
    std::memcpy(&header, whole.data(), sizeof header);
    payload = whole.substr(sizeof header);
    return true;
  }
}

void message_reader::release() noexcept {
  if (in_ring_) ring_->pop();
  if (whole_in_joined_) joined_.clear();
  in_ring_ = whole_in_joined_ = false;
}

}  // namespace herd::detail
