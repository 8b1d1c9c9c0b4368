// The decisions of the synchronization primitives on their own, without shared memory, futexes or
// other processes: what a lock word, a semaphore's value, an event, a barrier's generations and a
// condition's counts become, and whom an operation wakes. Then a condition's waiter table in this
// process's memory, with a waiter that died or abandoned its wait.
#include "detail/sync_steps.hpp"  // first: the header stands alone

#include "detail/condition_waiters.hpp"

#include <herd/error.hpp>

#include <doctest/doctest.h>

#include <boost/asio/error.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace d = herd::detail;
using d::grant_word;
using namespace std::chrono_literals;

constexpr std::uint32_t me = 4242;
constexpr std::uint32_t other = 777;

// A pid that no process has any more: a child that exited and was reaped.
std::uint32_t reaped_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  REQUIRE(pid > 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return static_cast<std::uint32_t>(pid);
}

// A condition's counts and waiter table, as they are in its shared memory.
struct condition_fixture {
  d::condition_counts counts{};
  std::unique_ptr<d::waiter_table> table = std::make_unique<d::waiter_table>();
  d::condition_waiters waiters{counts, *table};

  struct waiter {
    std::uint64_t ticket;
    std::uint32_t slot;
  };
  waiter arrive() {
    waiter w{0, d::no_slot};
    w.ticket = waiters.take_ticket(w.slot);
    return w;
  }
  bool claim(const waiter& w) { return waiters.claim(w.ticket, w.slot); }
};

}  // namespace

TEST_SUITE("sync_steps") {
  // -- locks ----------------------------------------------------------------------------------

  TEST_CASE("a free lock word is taken with the taker's pid, and a held one is not") {
    CHECK(d::word_after_taking(0, me, false) == me);
    // The waiters bit survives an uncontended take: others still sleep on the word.
    CHECK(d::word_after_taking(d::waiters_bit, me, false) == (me | d::waiters_bit));
    // A taker that has slept sets it, whatever the word held.
    CHECK(d::word_after_taking(0, me, true) == (me | d::waiters_bit));
    CHECK_FALSE(d::word_after_taking(other, me, false));
    CHECK_FALSE(d::word_after_taking(other | d::waiters_bit, me, true));
    CHECK_FALSE(d::word_after_taking(me, me, false));  // a plain lock is not re-entered
  }

  TEST_CASE("a sleeper marks a held word and takes a free one instead of sleeping") {
    CHECK(d::word_to_sleep_on(0) == 0);
    CHECK(d::word_to_sleep_on(d::waiters_bit) == 0);  // released since the bit was set: free
    CHECK(d::word_to_sleep_on(other) == (other | d::waiters_bit));
    CHECK(d::word_to_sleep_on(other | d::waiters_bit) == (other | d::waiters_bit));
  }

  TEST_CASE("a release wakes one sleeper only if the word says someone may sleep") {
    CHECK_FALSE(d::release_wakes_one(me));
    CHECK(d::release_wakes_one(me | d::waiters_bit));
    CHECK(d::lock_owner(me | d::waiters_bit) == me);
  }

  TEST_CASE("only a lock held by another process is looked at for a dead owner") {
    CHECK_FALSE(d::may_take_from_dead_owner(0, me));
    CHECK_FALSE(d::may_take_from_dead_owner(d::waiters_bit, me));
    CHECK_FALSE(d::may_take_from_dead_owner(me | d::waiters_bit, me));
    CHECK(d::may_take_from_dead_owner(other, me));
    CHECK(d::may_take_from_dead_owner(other | d::waiters_bit, me));
  }

  TEST_CASE("an rlock is re-entered by its owning thread only, never by an awaitable acquisition") {
    constexpr std::uint32_t thread = 12, other_thread = 13;
    CHECK(d::rlock_reenters(me, me, thread, thread));
    CHECK(d::rlock_reenters(me | d::waiters_bit, me, thread, thread));
    CHECK_FALSE(d::rlock_reenters(me, me, thread, other_thread));
    CHECK_FALSE(d::rlock_reenters(other, me, thread, thread));  // same thread id in another process
    CHECK_FALSE(d::rlock_reenters(0, me, thread, thread));
    CHECK_FALSE(d::rlock_reenters(me, me, d::async_tag, d::async_tag));
  }

  TEST_CASE("an rlock taken three times by a thread is released by it three times, by no other") {
    constexpr std::uint32_t thread = 12, other_thread = 13;
    CHECK_FALSE(d::rlock_release_allowed(thread, other_thread));
    CHECK(d::rlock_release_allowed(thread, thread));
    std::uint32_t depth = 3;
    int releases = 0;
    for (;;) {
      ++releases;
      if (!d::rlock_still_held(depth--)) break;
    }
    CHECK(releases == 3);
    CHECK(depth == 0);
  }

  TEST_CASE("an awaitable rlock acquisition belongs to the process: any of its threads releases it") {
    CHECK(d::rlock_release_allowed(d::async_tag, 12));
    CHECK(d::rlock_release_allowed(d::async_tag, 0));
    CHECK_FALSE(d::rlock_still_held(1));
  }

  // -- semaphores and events ------------------------------------------------------------------

  TEST_CASE("a semaphore at 0 makes the taker wait, and a release wakes sleepers only if some may sleep") {
    CHECK_FALSE(d::value_after_taking(0));
    CHECK(d::value_after_taking(1) == 0u);
    CHECK(d::value_after_taking(UINT32_MAX) == UINT32_MAX - 1);
    CHECK_FALSE(d::release_wakes_sleepers(0));
    CHECK(d::release_wakes_sleepers(1));
  }

  TEST_CASE("a bounded semaphore refuses a release at its bound, an unbounded one only at 2^32 - 1") {
    const std::uint32_t bound = d::semaphore_maximum(true, 2);
    CHECK(bound == 2);
    CHECK(d::value_after_release(1, bound) == 2u);
    CHECK_FALSE(d::value_after_release(2, bound));
    CHECK_FALSE(d::value_after_release(0, d::semaphore_maximum(true, 0)));  // BoundedSemaphore(0)
    const std::uint32_t unbounded = d::semaphore_maximum(false, 2);
    CHECK(d::value_after_release(2, unbounded) == 3u);
    CHECK(d::value_after_release(UINT32_MAX - 1, unbounded) == UINT32_MAX);
    CHECK_FALSE(d::value_after_release(UINT32_MAX, unbounded));
  }

  TEST_CASE("an event wait is over once set, or set and cleared again since it looked") {
    CHECK_FALSE(d::event_wait_over(0, 5, 5));
    CHECK(d::event_wait_over(1, 5, 5));
    CHECK(d::event_wait_over(0, 6, 5));  // set while it waited, then cleared
    CHECK(d::event_wait_over(0, 0, UINT32_MAX));  // the count of sets wrapped
  }

  // -- deadlines ------------------------------------------------------------------------------

  TEST_CASE("a sleeper wakes at its deadline or sooner to look for a dead holder, and times out at it") {
    const auto now = d::deadline_clock::now();
    CHECK(d::next_look(std::nullopt, now) == now + d::owner_check);
    CHECK(d::next_look(now + 10ms, now) == now + 10ms);
    CHECK(d::next_look(now + d::owner_check + 1ms, now) == now + d::owner_check);
    CHECK_FALSE(d::deadline_passed(std::nullopt, now));
    CHECK_FALSE(d::deadline_passed(now + 1ns, now));
    CHECK(d::deadline_passed(now, now));
    CHECK(d::deadline_passed(now - 1ms, now));
  }

  // -- barriers -------------------------------------------------------------------------------

  TEST_CASE("the last party to arrive trips the barrier, the others wait with their index") {
    for (const std::uint32_t arrived : {0u, 1u}) {
      const auto arrival = d::arrive_at_barrier(false, arrived, 3);
      CHECK(arrival.outcome == d::barrier_outcome::waits);
      CHECK(arrival.index == arrived);
    }
    const auto last = d::arrive_at_barrier(false, 2, 3);
    CHECK(last.outcome == d::barrier_outcome::trips);
    CHECK(last.index == 2);
    const auto alone = d::arrive_at_barrier(false, 0, 1);
    CHECK(alone.outcome == d::barrier_outcome::trips);
    CHECK(alone.index == 0);
  }

  TEST_CASE("a broken barrier refuses every arrival, the last one too") {
    CHECK(d::arrive_at_barrier(true, 0, 3).outcome == d::barrier_outcome::broken);
    CHECK(d::arrive_at_barrier(true, 2, 3).outcome == d::barrier_outcome::broken);
  }

  TEST_CASE("a broken generation stays broken for its waiters while the next one starts whole") {
    const std::uint64_t after_break = d::broken_generations_after_end(d::generation_bit(6), 5, true);
    CHECK(d::generation_broken(after_break, 5));
    CHECK_FALSE(d::generation_broken(after_break, 6));
    const std::uint64_t after_trip = d::broken_generations_after_end(after_break, 6, false);
    CHECK(d::generation_broken(after_trip, 5));
    CHECK_FALSE(d::generation_broken(after_trip, 6));
    CHECK_FALSE(d::generation_broken(after_trip, 7));
    // Generation 63 is followed by 64, whose bit is 0's: a broken 0 from long ago is forgotten.
    const std::uint64_t wrapped = d::broken_generations_after_end(d::generation_bit(0), 63, true);
    CHECK(d::generation_broken(wrapped, 63));
    CHECK_FALSE(d::generation_broken(wrapped, 64));
  }

  TEST_CASE("a wait that gives up breaks the barrier and says why, unless the last party came first") {
    const std::uint64_t broken = d::broken_generations_after_end(0, 9, true);
    const std::uint64_t tripped = d::broken_generations_after_end(0, 9, false);
    CHECK(d::barrier_give_up_result(broken, 9, herd::errc::timed_out) == herd::errc::timed_out);
    CHECK(d::barrier_give_up_result(broken, 9, boost::asio::error::operation_aborted) ==
          boost::asio::error::operation_aborted);
    CHECK_FALSE(d::barrier_give_up_result(tripped, 9, herd::errc::timed_out));
  }

  // -- conditions: the counts -----------------------------------------------------------------

  TEST_CASE("a waiter's ticket says whether notify_all woke it, it may claim a notify's wake-up, or it waits") {
    // notify_all woke tickets before 3; a notify(n) lets tickets 3 to 5 claim.
    CHECK(d::standing_of(2, 3, 6) == d::waiter_standing::woken_by_notify_all);
    CHECK(d::standing_of(3, 3, 6) == d::waiter_standing::may_claim);
    CHECK(d::standing_of(5, 3, 6) == d::waiter_standing::may_claim);
    CHECK(d::standing_of(6, 3, 6) == d::waiter_standing::waiting);  // came after the notify
  }

  TEST_CASE("notify(n) grants at most as many wake-ups as there are waiters, and none to no waiter") {
    const auto two_of_three = d::grants_after_notify(2, 3, 0);
    CHECK(two_of_three.woken == 2);
    CHECK(two_of_three.grants == grant_word(2, 3));  // all three may claim one of the two
    const auto five_of_two = d::grants_after_notify(5, 2, 0);
    CHECK(five_of_two.woken == 2);
    CHECK(five_of_two.grants == grant_word(2, 2));
    CHECK(d::grants_after_notify(0, 3, grant_word(1, 2)).woken == 0);
    CHECK(d::grants_after_notify(0, 3, grant_word(1, 2)).grants == grant_word(1, 2));
    CHECK(d::grants_after_notify(4, 0, grant_word(1, 2)).woken == 0);
  }

  TEST_CASE("a notify on top of unclaimed wake-ups adds its own and lets every counted waiter claim") {
    // notify(2) of three left one waiting; a fourth waiter came; notify(1).
    const auto next = d::grants_after_notify(1, 2, grant_word(2, 3));
    CHECK(next.woken == 1);
    CHECK(next.grants == grant_word(3, 4));
    CHECK(d::notify_sweeps_first(grant_word(2, 3)));
    CHECK_FALSE(d::notify_sweeps_first(grant_word(0, 3)));
  }

  TEST_CASE("a claim takes one wake-up and one claimant, and fails once none is left") {
    CHECK(d::grants_after_claim(grant_word(2, 3)) == grant_word(1, 2));
    CHECK(d::grants_after_claim(grant_word(1, 1)) == grant_word(0, 0));
    CHECK_FALSE(d::grants_after_claim(grant_word(0, 2)));
  }

  TEST_CASE("a waiter leaving without a wake-up takes one with it only if every claimant had one") {
    const auto as_many = d::grants_after_leaving(grant_word(2, 2));
    CHECK(as_many.took_grant);
    CHECK(as_many.grants == grant_word(1, 1));
    const auto fewer = d::grants_after_leaving(grant_word(2, 3));
    CHECK_FALSE(fewer.took_grant);  // the others keep both; it leaves `waiting` instead
    CHECK(fewer.grants == grant_word(2, 2));
    const auto none = d::grants_after_leaving(grant_word(0, 2));
    CHECK_FALSE(none.took_grant);
    CHECK(none.grants == grant_word(0, 1));
    CHECK(d::waiting_after_leaving(3) == 2);
    CHECK(d::waiting_after_leaving(0) == 0);
  }

  TEST_CASE("notify(2) of three waiters, one of which dies unclaimed: the two live ones claim both") {
    auto notified = d::grants_after_notify(2, 3, 0);
    std::uint64_t grants = notified.grants;
    std::uint32_t waiting = 3 - notified.woken;
    const auto dead = d::grants_after_leaving(grants);
    REQUIRE_FALSE(dead.took_grant);
    grants = dead.grants;
    waiting = d::waiting_after_leaving(waiting);
    CHECK(waiting == 0);
    grants = d::grants_after_claim(grants).value();
    grants = d::grants_after_claim(grants).value();
    CHECK(grants == 0);  // nothing left over for a waiter that comes later
  }

  TEST_CASE("the table's sweep skips free slots, reclaims abandoned ones and looks at the others' processes") {
    CHECK(d::review_slot(0, 4, false, 0, 10) == d::slot_review::skip);
    CHECK(d::review_slot(other, 4, false, 0, 0) == d::slot_review::look_at_process);
    CHECK(d::review_slot(other | d::abandoned_bit, 4, false, 0, 0) == d::slot_review::reclaim);
    CHECK(d::review_slot(other | d::claiming_bit, 4, false, 0, 0) == d::slot_review::look_at_process);
  }

  TEST_CASE("a lingering sweep looks only at waiters that may claim and have not begun to") {
    CHECK(d::review_slot(other, 4, true, 0, 10) == d::slot_review::look_at_process);
    CHECK(d::review_slot(other | d::abandoned_bit, 4, true, 0, 10) == d::slot_review::reclaim);
    CHECK(d::review_slot(other | d::claiming_bit, 4, true, 0, 10) == d::slot_review::skip);
    CHECK(d::review_slot(other, 4, true, 5, 10) == d::slot_review::skip);   // woken by notify_all
    CHECK(d::review_slot(other, 10, true, 5, 10) == d::slot_review::skip);  // came after the notify
    CHECK(d::lingering_sweep_done(0, grant_word(0, 3)));
    CHECK_FALSE(d::lingering_sweep_done(1, grant_word(2, 3)));
    CHECK(d::lingering_sweep_done(2, grant_word(2, 3)));
  }

  TEST_CASE("a waiter that died while claiming is taken as having claimed") {
    CHECK_FALSE(d::reclaimed_waiter_leaves_counts(other | d::claiming_bit));
    CHECK(d::reclaimed_waiter_leaves_counts(other));
    CHECK(d::reclaimed_waiter_leaves_counts(other | d::abandoned_bit));
  }

  // -- conditions: the waiter table -----------------------------------------------------------

  TEST_CASE("notify(1) after a waiter died unclaimed wakes one later waiter, not two") {
    condition_fixture c;
    const auto died = c.arrive();
    c.table->slot[died.slot].owner.store(reaped_pid());
    REQUIRE(c.waiters.notify(1, false));
    const auto first = c.arrive(), second = c.arrive();
    REQUIRE(c.waiters.notify(1, false));  // the dead waiter's wake-up goes with it
    const bool first_woken = c.claim(first), second_woken = c.claim(second);
    CHECK(first_woken != second_woken);
    CHECK(d::grant_part(c.counts.grants.load()) == 0);
    CHECK(c.counts.waiting.load() == 1);
  }

  TEST_CASE("notify(1) after a wait was abandoned unclaimed wakes one later waiter, not two") {
    condition_fixture c;
    const auto gone = c.arrive();
    REQUIRE(c.waiters.notify(1, false));
    c.waiters.abandon_wait(gone.ticket, gone.slot, false);
    const auto first = c.arrive(), second = c.arrive();
    REQUIRE(c.waiters.notify(1, false));
    CHECK(c.claim(first));
    CHECK_FALSE(c.claim(second));
    CHECK(c.table->slot[gone.slot].owner.load() == 0);  // the sweep freed its slot
  }

  TEST_CASE("a live waiter keeps its unclaimed wake-up across a later notify") {
    condition_fixture c;
    const auto early = c.arrive();
    REQUIRE(c.waiters.notify(1, false));
    const auto late = c.arrive();
    REQUIRE(c.waiters.notify(1, false));
    CHECK(c.claim(early));
    CHECK(c.claim(late));
    CHECK(c.counts.grants.load() == 0);
  }

  TEST_CASE("notify_all wakes every waiter there and none that comes after, and a notify of none wakes no one") {
    condition_fixture c;
    CHECK_FALSE(c.waiters.notify(1, false));
    CHECK_FALSE(c.waiters.notify(0, true));
    const auto a = c.arrive(), b = c.arrive();
    CHECK_FALSE(c.waiters.notify(0, false));
    REQUIRE(c.waiters.notify(0, true));
    const auto late = c.arrive();
    CHECK(c.claim(a));
    CHECK(c.claim(b));
    CHECK_FALSE(c.claim(late));
    CHECK(c.waiters.finish_wait(a.ticket, a.slot, true));
    CHECK_FALSE(c.waiters.finish_wait(late.ticket, late.slot, false));  // timed out: it leaves
    CHECK(c.counts.waiting.load() == 0);
  }
}
