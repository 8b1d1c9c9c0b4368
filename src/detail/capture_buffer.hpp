// Collects a stream of unknown length into one std::string, cheaply for small and large outputs.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/buffer.hpp>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace herd::detail {

/// Small outputs grow in place in one string (returned without a copy). Large outputs go to
/// 4 MiB chunks backed by transparent huge pages and are joined once at the end: growing one
/// string by doubling copies and page-faults ~2.5x the data, which made a 100 MiB capture
/// slower than Python's (bench/README.md).
class capture_buffer {
 public:
  explicit capture_buffer(std::string initial = {});

  /// Free space to read into (never empty).
  asio::mutable_buffer prepare();
  /// `n` bytes of the last prepare() now hold data.
  void commit(std::size_t n) noexcept;
  std::size_t size() const noexcept { return total_; }
  /// Everything collected, as one string; the buffer is empty afterwards.
  std::string take();

 private:
  struct free_memory {
    void operator()(char* p) const noexcept { std::free(p); }
  };
  struct chunk {
    std::unique_ptr<char, free_memory> data;
    std::size_t used;
  };

  std::string first_;
  std::size_t first_used_ = 0;
  std::vector<chunk> chunks_;
  std::size_t total_ = 0;
};

/// Asks the kernel to back [data, data + size) with transparent huge pages where aligned
/// (only worthwhile for large, fresh memory: one fault per 2 MiB instead of per 4 KiB).
void advise_huge_pages(void* data, std::size_t size) noexcept;

}  // namespace herd::detail
