// A queue's counts on their own (src/detail/channel_shared.hpp): the two halves of the count
// word, and when channel::size may repair a count that a receiver killed inside a receive left
// too high — the pure decision first, then the shared region applying it in this process.
#include "detail/channel_shared.hpp"  // first: the header stands alone

#include <doctest/doctest.h>

#include <cstdint>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using herd::detail::count_repair;
using herd::detail::decide_count_repair;
using herd::detail::message_counts;

// The word for `queued` messages put and not taken, `unsent` of them still with producers.
std::uint64_t word(std::int64_t queued, std::int64_t unsent) {
  return message_counts::puts(unsent) + static_cast<std::uint64_t>(queued - unsent) * message_counts::one_put;
}

// A pid that no process has: a child that exited and was reaped.
int gone_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

}  // namespace

TEST_SUITE("channel_counts") {
  TEST_CASE("a put counts itself in both halves of the word") {
    const std::uint64_t w = word(5, 2);
    CHECK(message_counts::queued(w) == 5);
    CHECK(message_counts::unsent(w) == 2);
    CHECK(message_counts::queued(message_counts::puts(3)) == 3);
    CHECK(message_counts::unsent(message_counts::puts(3)) == 3);
    CHECK(message_counts::drained(w) == word(2, 2));
  }

  TEST_CASE("a count no larger than what producers hold is reported as read") {
    for (bool socket_empty : {false, true})
      for (bool untracked : {false, true})
        for (bool live : {false, true}) {
          CHECK(decide_count_repair(word(3, 3), socket_empty, untracked, live) == count_repair::report_observed);
          CHECK(decide_count_repair(word(0, 0), socket_empty, untracked, live) == count_repair::report_observed);
        }
    CHECK_FALSE(message_counts::may_hide_lost_count_outs(word(3, 3)));
    CHECK(message_counts::may_hide_lost_count_outs(word(4, 3)));
  }

  TEST_CASE("while the socket holds packets the count is reported as read") {
    CHECK(decide_count_repair(word(4, 3), false, false, false) == count_repair::report_observed);
  }

  TEST_CASE("a drained socket reports what producers hold but repairs only with no receiver possibly inside") {
    CHECK(decide_count_repair(word(4, 3), true, false, false) == count_repair::repair);
    CHECK(decide_count_repair(word(4, 3), true, false, true) == count_repair::report_drained);
    CHECK(decide_count_repair(word(4, 3), true, true, false) == count_repair::report_drained);
    CHECK(decide_count_repair(word(4, 3), true, true, true) == count_repair::report_drained);
  }

  TEST_CASE("the shared region repairs a count whose receiver died inside a receive and gives its places back") {
    herd::detail::shared_region region(0, 0);
    auto& h = region.header();
    region.count_put(4);
    region.count_sent(3);  // one still with its producer
    CHECK(message_counts::queued(h.counts.load()) == 4);
    CHECK(message_counts::unsent(h.counts.load()) == 1);
    auto& dead = h.receivers[0];
    dead.pid = gone_pid();
    dead.receiving = 1;
    const std::uint64_t observed = h.counts.load();
    // While the socket is not known to be empty, nothing changes.
    auto reported = region.repair_counts(observed, false);
    CHECK(reported.counts == observed);
    CHECK(reported.lost == 0);
    reported = region.repair_counts(observed, true);
    CHECK(reported.counts == word(1, 1));
    CHECK(reported.lost == 3);
    CHECK(h.counts.load() == word(1, 1));
    CHECK(dead.receiving.load() == 0);  // its loss is counted now
  }

  TEST_CASE("the shared region does not repair while a living receiver is inside a receive") {
    herd::detail::shared_region region(0, 0);
    auto& h = region.header();
    region.count_put(2);
    region.count_sent(2);
    region.count_taken(1);
    const std::uint64_t lost_one = h.counts.load();
    h.receivers[0].pid = static_cast<std::int32_t>(::getpid());
    h.receivers[0].receiving = 1;
    const auto reported = region.repair_counts(lost_one, true);
    CHECK(reported.counts == word(0, 0));
    CHECK(reported.lost == 0);
    CHECK(h.counts.load() == lost_one);
  }

  TEST_CASE("a task_done beyond the unfinished tasks changes nothing") {
    herd::detail::shared_region region(0, 0);
    CHECK(region.finish_task() == 0);
    CHECK(region.add_unfinished(2));
    CHECK_FALSE(region.add_unfinished(1));
    CHECK(region.finish_task() == 3);
    CHECK(region.finish_task() == 2);
    CHECK(region.finish_task() == 1);
    CHECK(region.finish_task() == 0);
    CHECK(region.unfinished() == 0);
  }
}
