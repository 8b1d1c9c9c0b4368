#include "channel_shared.hpp"

#include "channel_transport.hpp"
#include "fork_lock.hpp"
#include "reap.hpp"
#include "unique_fd.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <unistd.h>

namespace herd::detail {

count_repair decide_count_repair(std::uint64_t observed, bool socket_empty, bool untracked_receivers,
                                 bool live_receiver_inside) noexcept {
  if (!message_counts::may_hide_lost_count_outs(observed) || !socket_empty) return count_repair::report_observed;
  // The socket is empty: what is queued is what producers hold, whatever happens next. But a
  // receiver without a mark could be inside a receive unseen, and a living one inside may hold a
  // packet it has not counted out yet: repair later.
  if (untracked_receivers || live_receiver_inside) return count_repair::report_drained;
  return count_repair::repair;
}

shared_region::shared_region(std::size_t slots, std::size_t slot_size) {
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

shared_region::~shared_region() {
  if (base_) ::munmap(base_, size_);
}

// ---------------------------------------------------------------------------------------------
// counts

void shared_region::count_put(std::int64_t n) noexcept {
  header().counts.fetch_add(message_counts::puts(n), std::memory_order_relaxed);
}

void shared_region::uncount_put(std::int64_t n) noexcept {
  header().counts.fetch_sub(message_counts::puts(n), std::memory_order_relaxed);
}

void shared_region::count_sent(std::size_t n) noexcept { header().counts.fetch_sub(n, std::memory_order_relaxed); }

// Once per packet, not per get: the counter is shared with the producers, and a write per
// message made its cache line bounce.
void shared_region::count_taken(std::size_t n) noexcept {
  if (n > 0) header().counts.fetch_sub(n * message_counts::one_put, std::memory_order_relaxed);
}

bool shared_region::add_unfinished(std::int64_t n) noexcept {
  return header().unfinished.fetch_add(n, std::memory_order_acq_rel) == 0;
}

void shared_region::remove_unfinished(std::int64_t n) noexcept {
  header().unfinished.fetch_sub(n, std::memory_order_acq_rel);
}

std::int64_t shared_region::finish_task() noexcept {
  auto& unfinished = header().unfinished;
  std::int64_t current = unfinished.load(std::memory_order_acquire);
  do {
    if (current <= 0) return 0;
  } while (!unfinished.compare_exchange_weak(current, current - 1, std::memory_order_acq_rel));
  return current;
}

std::int64_t shared_region::unfinished() const noexcept {
  return header().unfinished.load(std::memory_order_acquire);
}

shared_region::repaired shared_region::repair_counts(std::uint64_t observed, bool socket_empty) noexcept {
  auto& h = header();
  // The receivers are looked at only when the rule needs them: each one inside a receive costs
  // a look at whether its process is gone.
  const bool untracked = socket_empty && h.untracked_receivers.load() != 0;
  std::array<receiver_slot*, receiver_slots> lost{};
  std::size_t dead = 0;
  bool live_inside = false;
  if (socket_empty && !untracked) {
    for (receiver_slot& slot : h.receivers) {
      if (slot.receiving.load() == 0) continue;
      if (!process_gone(slot.pid.load())) {
        live_inside = true;
        break;
      }
      lost[dead++] = &slot;
    }
  }
  const std::uint64_t drained = message_counts::drained(observed);
  switch (decide_count_repair(observed, socket_empty, untracked, live_inside)) {
    case count_repair::report_observed:
      return {observed, 0};
    case count_repair::report_drained:
      return {drained, 0};
    case count_repair::repair:
      break;
  }
  // A producer or receiver that moved since `observed` changed the word: then nothing changes.
  if (!h.counts.compare_exchange_strong(observed, drained)) return {drained, 0};
  for (std::size_t i = 0; i < dead; ++i) lost[i]->receiving.store(0);  // their loss is counted now
  return {drained, static_cast<std::uint64_t>(message_counts::queued(observed) - message_counts::unsent(observed))};
}

// ---------------------------------------------------------------------------------------------
// receivers

receiver_slot* shared_region::claim_receiver(std::int32_t pid) noexcept {
  for (receiver_slot& slot : header().receivers) {
    std::int32_t holder = slot.pid.load(std::memory_order_relaxed);
    if (holder == pid) return &slot;  // a pid reused after a death: the slot is ours
    if ((holder == 0 || (slot.receiving.load() == 0 && process_gone(holder))) &&
        slot.pid.compare_exchange_strong(holder, pid)) {
      slot.receiving.store(0);
      return &slot;
    }
  }
  header().untracked_receivers.store(1);
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// the slab

std::optional<std::uint32_t> shared_region::claim_slot(std::size_t length) noexcept {
  auto& h = header();
  if (length > h.slot_size) return std::nullopt;
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (std::uint32_t i = 0; i < h.slot_count; ++i) {
      std::uint32_t expected = slot_free;
      if (slot(i).state.compare_exchange_strong(expected, slot_writing, std::memory_order_acquire)) {
        slot(i).owner.store(current_pid(), std::memory_order_relaxed);
        return i;
      }
    }
    // All busy: take back slots whose writer or reader died holding them.
    for (std::size_t i = 0; i < h.slot_count; ++i) {
      auto& s = slot(i);
      std::uint32_t observed = s.state.load(std::memory_order_acquire);
      if ((observed == slot_writing || observed == slot_reading) && process_gone(s.owner.load()))
        s.state.compare_exchange_strong(observed, slot_free);
    }
  }
  return std::nullopt;
}

std::optional<std::uint32_t> shared_region::put_in_slot(std::string_view bytes) noexcept {
  const auto index = claim_slot(bytes.size());
  if (!index) return std::nullopt;
  std::memcpy(slot_data(*index), bytes.data(), bytes.size());
  slot(*index).state.store(slot_queued, std::memory_order_release);
  return index;
}

void shared_region::release_slot(std::uint32_t index) noexcept {
  slot(index).state.store(slot_free, std::memory_order_release);
}

bool shared_region::take_from_slot(std::uint32_t index, std::uint64_t length, std::string& out) {
  if (index >= header().slot_count || length > header().slot_size) return false;
  auto& s = slot(index);
  std::uint32_t expected = slot_queued;
  if (!s.state.compare_exchange_strong(expected, slot_reading, std::memory_order_acquire)) return false;
  s.owner.store(current_pid(), std::memory_order_relaxed);
  out.assign(slot_data(index), length);
  s.state.store(slot_free, std::memory_order_release);
  return true;
}

}  // namespace herd::detail
