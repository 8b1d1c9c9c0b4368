#include "capture_buffer.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sys/mman.h>

namespace herd::detail {
namespace {

constexpr std::size_t first_initial = 64 * 1024;
constexpr std::size_t first_limit = 1 << 20;
constexpr std::size_t huge_page = 2 << 20;
constexpr std::size_t chunk_size = 4 << 20;

}  // namespace

void advise_huge_pages(void* data, std::size_t size) noexcept {
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t first = (begin + huge_page - 1) & ~(huge_page - 1);
  const std::uintptr_t last = (begin + size) & ~(huge_page - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

capture_buffer::capture_buffer(std::string initial) : first_(std::move(initial)) {
  first_used_ = total_ = first_.size();
}

asio::mutable_buffer capture_buffer::prepare() {
  if (chunks_.empty()) {
    if (first_used_ < first_.size()) return asio::buffer(first_.data() + first_used_, first_.size() - first_used_);
    if (first_.size() < first_limit) {
      first_.resize(std::max(first_initial, first_.size() * 2));
      return asio::buffer(first_.data() + first_used_, first_.size() - first_used_);
    }
  } else if (chunks_.back().used < chunk_size) {
    chunk& last = chunks_.back();
    return asio::buffer(last.data.get() + last.used, chunk_size - last.used);
  }
  char* memory = static_cast<char*>(std::aligned_alloc(huge_page, chunk_size));
  if (memory == nullptr) throw std::bad_alloc();
  advise_huge_pages(memory, chunk_size);
  chunks_.push_back(chunk{std::unique_ptr<char, free_memory>(memory), 0});
  return asio::buffer(memory, chunk_size);
}

void capture_buffer::commit(std::size_t n) noexcept {
  total_ += n;
  if (chunks_.empty())
    first_used_ += n;
  else
    chunks_.back().used += n;
}

std::string capture_buffer::take() {
  std::string all;
  if (chunks_.empty()) {
    first_.resize(first_used_);
    all = std::move(first_);
  } else {
    all.reserve(total_);
    if (total_ >= chunk_size) advise_huge_pages(all.data(), total_);
    all.append(first_.data(), first_used_);
    for (const chunk& c : chunks_) all.append(c.data.get(), c.used);
  }
  first_.clear();
  first_used_ = total_ = 0;
  chunks_.clear();
  return all;
}

}  // namespace herd::detail
