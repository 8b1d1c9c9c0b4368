#include "sync_steps.hpp"

#include <algorithm>

namespace herd::detail {

std::optional<std::uint32_t> word_after_taking(std::uint32_t word, std::uint32_t self, bool contended) noexcept {
  if (lock_owner(word) != 0) return std::nullopt;
  return self | (contended ? waiters_bit : word & waiters_bit);
}

std::uint32_t word_to_sleep_on(std::uint32_t word) noexcept { return lock_owner(word) == 0 ? 0 : word | waiters_bit; }

bool may_take_from_dead_owner(std::uint32_t word, std::uint32_t self) noexcept {
  const std::uint32_t owner = lock_owner(word);
  return owner != 0 && owner != self;
}

bool rlock_reenters(std::uint32_t word, std::uint32_t self, std::uint32_t owner_thread, std::uint32_t tag) noexcept {
  return tag != async_tag && lock_owner(word) == self && owner_thread == tag;
}

bool rlock_release_allowed(std::uint32_t owner_thread, std::uint32_t tag) noexcept {
  return owner_thread == tag || owner_thread == async_tag;
}

std::optional<std::uint32_t> value_after_taking(std::uint32_t value) noexcept {
  if (value == 0) return std::nullopt;
  return value - 1;
}

std::optional<std::uint32_t> value_after_release(std::uint32_t value, std::uint32_t maximum) noexcept {
  if (value >= maximum) return std::nullopt;  // Python's ValueError
  return value + 1;
}

std::optional<sync_clock::time_point> next_look(std::optional<sync_clock::time_point> deadline,
                                                sync_clock::time_point now) noexcept {
  const sync_clock::time_point recheck = now + owner_check;
  return deadline && *deadline < recheck ? deadline : recheck;
}

bool deadline_passed(const std::optional<sync_clock::time_point>& deadline, sync_clock::time_point now) noexcept {
  return deadline && now >= *deadline;
}

barrier_arrival arrive_at_barrier(bool broken, std::uint32_t arrived, std::uint32_t parties) noexcept {
  if (broken) return {barrier_outcome::broken, 0};
  return {arrived + 1 >= parties ? barrier_outcome::trips : barrier_outcome::waits, arrived};
}

std::uint64_t broken_generations_after_end(std::uint64_t broken_generations, std::uint32_t g, bool broken) noexcept {
  if (broken) broken_generations |= generation_bit(g);
  return broken_generations & ~generation_bit(g + 1);
}

error_code barrier_give_up_result(std::uint64_t broken_generations, std::uint32_t g, error_code reason) noexcept {
  return generation_broken(broken_generations, g) ? reason : error_code();
}

waiter_standing standing_of(std::uint64_t ticket, std::uint64_t all_upto, std::uint64_t grant_limit) noexcept {
  if (ticket < all_upto) return waiter_standing::woken_by_notify_all;
  if (ticket < grant_limit) return waiter_standing::may_claim;
  return waiter_standing::waiting;
}

std::optional<std::uint64_t> grants_after_claim(std::uint64_t grants) noexcept {
  const std::uint64_t granted = grant_part(grants), eligible = eligible_part(grants);
  if (granted == 0) return std::nullopt;
  return grant_word(granted - 1, eligible > 0 ? eligible - 1 : 0);
}

leaving_grants grants_after_leaving(std::uint64_t grants) noexcept {
  const std::uint64_t granted = grant_part(grants), eligible = eligible_part(grants);
  const bool had_grant = granted > 0 && granted >= eligible;
  return {grant_word(had_grant ? granted - 1 : granted, eligible > 0 ? eligible - 1 : 0), had_grant};
}

notify_grants grants_after_notify(std::size_t count, std::uint32_t waiting, std::uint64_t grants) noexcept {
  const auto woken = static_cast<std::uint32_t>(std::min<std::size_t>(count, waiting));
  if (woken == 0) return {0, grants};
  return {woken, grant_word(grant_part(grants) + woken, waiting + grant_part(grants))};
}

slot_review review_slot(std::uint32_t owner, std::uint64_t ticket, bool lingering, std::uint64_t all_upto,
                        std::uint64_t grant_limit) noexcept {
  if (owner == 0) return slot_review::skip;
  if (lingering && ((owner & claiming_bit) || standing_of(ticket, all_upto, grant_limit) != waiter_standing::may_claim))
    return slot_review::skip;
  return owner & abandoned_bit ? slot_review::reclaim : slot_review::look_at_process;
}

}  // namespace herd::detail
