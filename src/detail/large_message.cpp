#include "large_message.hpp"

#include "channel_transport.hpp"
#include "descriptors.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

namespace herd::detail {
namespace {

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

}  // namespace

error_code write_message_memfd(std::string_view bytes, unique_fd& out) {
  unique_fd memory = make_message_memfd();
  if (!memory) return system_code(errno);
  iovec part{const_cast<char*>(bytes.data()), bytes.size()};
  if (!write_parts(memory.get(), &part, 1, 0)) return system_code(errno);
  seal_message(memory.get());
  out = std::move(memory);
  return {};
}

error_code read_message_memfd(int fd, std::uint64_t length, std::string& spare, received_message& out) {
  const auto size = file_size(fd);
  if (!size || *size < length) return errc::bad_message;
  // herd's senders seal their memfds: mapped, the message is decoded where it lies, with no
  // buffer to allocate, zero and fill (for 1.5 GiB that was 2 of the 4 passes over fresh
  // memory a message cost). MAP_POPULATE maps its pages in one call, not one fault per 16.
  if (length > 0 && sealed_against_shrinking(fd)) {
    void* mapping = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (mapping != MAP_FAILED) {
      out = received_message(static_cast<const char*>(mapping), length);
      return {};
    }
  }
  // A memfd that may shrink under a mapping (not herd's), or no address space: read it.
  std::string message = std::move(spare);
  message.resize(length);
  if (!read_whole(fd, message.data(), length)) return errc::bad_message;
  out = received_message(std::move(message));
  return {};
}

// ---------------------------------------------------------------------------------------------
// outgoing_message, received_message, message_sink

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

message_sink message_sink::into(received_message& out) noexcept {
  return {[](void* context, std::string_view bytes, received_message* owned) -> error_code {
            auto& target = *static_cast<received_message*>(context);
            if (owned) target = std::move(*owned);
            else target = received_message(std::string(bytes));
            return {};
          },
          &out};
}

}  // namespace herd::detail
