// Both sides of supervised children's heartbeats (src/detail/liveness.hpp).
#include <herd/supervisor.hpp>

#include "detail/fork_lock.hpp"
#include "detail/liveness.hpp"
#include "detail/system_code.hpp"

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <new>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace herd {
namespace detail {

std::int64_t liveness_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

liveness_page::liveness_page(std::size_t slots) : count_(slots) {
  memfd_.reset(::memfd_create("herd-liveness", MFD_CLOEXEC));
  if (!memfd_) throw_error(system_code(errno), "supervisor: memfd_create for heartbeats");
  const std::size_t bytes = sizeof(liveness_slot) * (slots == 0 ? 1 : slots);
  if (::ftruncate(memfd_.get(), static_cast<off_t>(bytes)) != 0)
    throw_error(system_code(errno), "supervisor: sizing the heartbeat page");
  void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_.get(), 0);
  if (at == MAP_FAILED) throw_error(system_code(errno), "supervisor: mapping the heartbeat page");
  slots_ = static_cast<liveness_slot*>(at);
  for (std::size_t i = 0; i < slots; ++i) new (&slots_[i]) liveness_slot();
}

liveness_page::liveness_page(liveness_page&& other) noexcept
    : memfd_(std::move(other.memfd_)),
      slots_(std::exchange(other.slots_, nullptr)),
      count_(std::exchange(other.count_, 0)) {}

liveness_page& liveness_page::operator=(liveness_page&& other) noexcept {
  if (this != &other) {
    this->~liveness_page();
    new (this) liveness_page(std::move(other));
  }
  return *this;
}

liveness_page::~liveness_page() {
  if (slots_ != nullptr) ::munmap(slots_, sizeof(liveness_slot) * (count_ == 0 ? 1 : count_));
}

void liveness_page::reset(std::size_t i) noexcept {
  slots_[i].beat_ns.store(0, std::memory_order_relaxed);
  slots_[i].ready.store(0, std::memory_order_release);
}

std::string liveness_page::variable(std::size_t i) const {
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(memfd_.get()) + ":" + std::to_string(i);
}

namespace {

// The child's side: its slot, found once per process. The variable is taken out of the
// environment by the first look, so the process's own children do not beat for it; a fork of a
// process that looked looks again (and finds nothing).
std::atomic<int> looked_pid{0};
std::atomic<liveness_slot*> found_slot{nullptr};

liveness_slot* look_for_own_slot() noexcept {
  const char* value = std::getenv(liveness_variable);
  if (value == nullptr) return nullptr;
  const std::string text(value);
  ::unsetenv(liveness_variable);
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return nullptr;
  const unsigned long index = std::strtoul(text.c_str() + colon + 1, nullptr, 10);
  const int fd = ::open(text.substr(0, colon).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return nullptr;
  void* at = ::mmap(nullptr, sizeof(liveness_slot) * (index + 1), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (at == MAP_FAILED) return nullptr;
  return static_cast<liveness_slot*>(at) + index;
}

liveness_slot* own_liveness_slot() noexcept {
  const int pid = current_pid();
  if (looked_pid.load(std::memory_order_acquire) == pid) return found_slot.load(std::memory_order_relaxed);
  static std::mutex* looking = new std::mutex();  // never destroyed: exiting threads may beat
  std::lock_guard lock(*looking);
  if (looked_pid.load(std::memory_order_acquire) != pid) {
    found_slot.store(look_for_own_slot(), std::memory_order_relaxed);
    looked_pid.store(pid, std::memory_order_release);
  }
  return found_slot.load(std::memory_order_relaxed);
}

}  // namespace
}  // namespace detail

namespace this_process {

bool heartbeat() noexcept {
  detail::liveness_slot* slot = detail::own_liveness_slot();
  if (slot == nullptr) return false;
  slot->beat_ns.store(detail::liveness_now_ns(), std::memory_order_release);
  return true;
}

bool notify_ready() noexcept {
  detail::liveness_slot* slot = detail::own_liveness_slot();
  if (slot == nullptr) return false;
  slot->beat_ns.store(detail::liveness_now_ns(), std::memory_order_release);
  slot->ready.store(1, std::memory_order_release);
  return true;
}

}  // namespace this_process
}  // namespace herd
