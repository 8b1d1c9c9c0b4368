#include "supervisor_steps.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace herd::detail {

using kind = supervisor_steps::action::kind;

supervisor_steps::supervisor_steps(settings s) : settings_(std::move(s)), random_(settings_.seed) {
  children_.reserve(settings_.policies.size());
  for (const restart_policy p : settings_.policies) children_.push_back(child{p});
}

bool supervisor_steps::live(std::size_t i) const noexcept {
  const child_state s = children_[i].state;
  return s == child_state::starting || s == child_state::running;
}

void supervisor_steps::begin(time, actions& out) {
  if (phase_ != phase::idle) return;
  phase_ = phase::running;
  sequence_ = 0;
  advance(out);
}

void supervisor_steps::launch(std::size_t i, actions& out) {
  children_[i].state = child_state::starting;
  out.push_back({kind::start, i});
}

// The ordered start: the child at `sequence_` must have started before the next one starts.
void supervisor_steps::advance(actions& out) {
  while (sequence_ < children_.size()) {
    child& c = children_[sequence_];
    if (c.state == child_state::done || c.state == child_state::running) {
      ++sequence_;
      continue;
    }
    if (c.state == child_state::idle) launch(sequence_, out);
    return;  // starting, stopping or waiting: its turn is not over
  }
  sequence_ = none;
  first_start_ = false;
}

void supervisor_steps::launched(std::size_t i, time now, bool waits_ready, actions& out) {
  child& c = children_[i];
  if (c.state != child_state::starting) return;
  c.started_at = now;
  c.launched_once = true;
  if (!waits_ready) mark_started(i, out);
}

void supervisor_steps::ready(std::size_t i, time, actions& out) {
  if (children_[i].state == child_state::starting) mark_started(i, out);
}

void supervisor_steps::mark_started(std::size_t i, actions& out) {
  children_[i].state = child_state::running;
  if (sequence_ == i) advance(out);
}

void supervisor_steps::launch_failed(std::size_t i, time now, actions& out) {
  child& c = children_[i];
  if (c.state != child_state::starting) return;
  c.state = child_state::idle;
  c.started_at = now;
  if (phase_ != phase::running) return stop_next(out);
  // A spec that cannot start the first time is a mistake, not a crash to retry (as OTP's init).
  if (first_start_ && !c.launched_once) return fail(i, out);
  failure(i, true, now, out);
}

void supervisor_steps::exited(std::size_t i, bool abnormal, time now, actions& out) {
  child& c = children_[i];
  if (c.state == child_state::idle || c.state == child_state::done || c.state == child_state::waiting) return;
  const bool asked = c.state == child_state::stopping;
  const bool hung = std::exchange(c.hung, false);
  c.state = c.policy == restart_policy::temporary && asked ? child_state::done : child_state::idle;
  if (phase_ != phase::running) return stop_next(out);
  if (asked && !hung) return group_progress(out);  // stopped for a group restart
  failure(i, abnormal || hung, now, out);
}

void supervisor_steps::hung(std::size_t i, time, actions& out) {
  child& c = children_[i];
  if (phase_ != phase::running || !live(i)) return;
  c.hung = true;
  c.state = child_state::stopping;
  out.push_back({kind::stop, i});
}

void supervisor_steps::timer(std::size_t i, time, actions& out) {
  if (phase_ != phase::running) return;
  if (i == group) {
    if (group_from_ == none || group_stage_ != group_stage::waiting) return;
    const std::size_t from = std::exchange(group_from_, none);
    group_delay_ = {};
    sequence_ = from;
    return advance(out);
  }
  if (children_[i].state == child_state::waiting) {
    launch(i, out);
  }
}

void supervisor_steps::stop(time, actions& out) {
  if (phase_ == phase::idle) {
    phase_ = phase::stopped;
    out.push_back({kind::stopped});
    return;
  }
  if (phase_ != phase::running) return;
  phase_ = phase::stopping;
  stop_next(out);
}

// Child `i` ended on its own (or hung): restarted by its policy, within the intensity.
void supervisor_steps::failure(std::size_t i, bool abnormal, time now, actions& out) {
  child& c = children_[i];
  const bool restart = c.policy == restart_policy::permanent || (c.policy == restart_policy::transient && abnormal);
  if (!restart) {
    c.state = child_state::done;
    return group_progress(out);
  }
  if (!intensity_allows(now)) return fail(i, out);
  if (now - c.started_at >= settings_.backoff.reset_after) c.attempts = 0;
  ++c.restarts;
  const time delay = next_delay(c);
  if (settings_.strategy == supervision_strategy::one_for_one) {
    c.state = child_state::waiting;
    if (delay == time::zero()) return launch(i, out);
    out.push_back({kind::arm_timer, i, delay});
    return;
  }
  group_restart(settings_.strategy == supervision_strategy::one_for_all ? 0 : i, delay, out);
}

// one_for_all and rest_for_one: the children from `from` on are stopped, the last first, then
// started again in order after `delay`. A failure during one widens it.
void supervisor_steps::group_restart(std::size_t from, time delay, actions& out) {
  group_from_ = std::min(group_from_, from);
  group_delay_ = std::max(group_delay_, delay);
  group_stage_ = group_stage::stopping;
  sequence_ = none;
  group_progress(out);
}

void supervisor_steps::group_progress(actions& out) {
  if (group_from_ == none) return advance(out);
  if (group_stage_ != group_stage::stopping) return;
  for (std::size_t j = group_from_; j < children_.size(); ++j)
    if (children_[j].state == child_state::stopping) return;  // one at a time
  for (std::size_t j = children_.size(); j-- > group_from_;) {
    if (!live(j)) continue;
    children_[j].state = child_state::stopping;
    out.push_back({kind::stop, j});
    return;
  }
  group_stage_ = group_stage::waiting;
  if (group_delay_ != time::zero()) {
    out.push_back({kind::arm_timer, group, group_delay_});
    return;
  }
  sequence_ = std::exchange(group_from_, none);
  advance(out);
}

void supervisor_steps::fail(std::size_t i, actions& out) {
  failed_ = i;
  phase_ = phase::failing;
  stop_next(out);
}

// Stopping (asked, or giving up): waiting restarts are dropped, the live children stopped one
// at a time from the last; then the supervisor is over.
void supervisor_steps::stop_next(actions& out) {
  sequence_ = none;
  group_from_ = none;
  for (child& c : children_)
    if (c.state == child_state::waiting) c.state = child_state::idle;
  for (const child& c : children_)
    if (c.state == child_state::stopping) return;
  for (std::size_t j = children_.size(); j-- > 0;) {
    if (!live(j)) continue;
    children_[j].state = child_state::stopping;
    out.push_back({kind::stop, j});
    return;
  }
  if (phase_ == phase::failing) {
    phase_ = phase::failed;
    out.push_back({kind::gave_up, failed_});
  } else if (phase_ == phase::stopping) {
    phase_ = phase::stopped;
    out.push_back({kind::stopped});
  }
}

// OTP's rule: more than max_restarts within period, and the supervisor gives up.
bool supervisor_steps::intensity_allows(time now) {
  const time period = settings_.intensity.period;
  while (!recent_restarts_.empty() && now - recent_restarts_.front() >= period) recent_restarts_.pop_front();
  if (recent_restarts_.size() >= settings_.intensity.max_restarts) return false;
  recent_restarts_.push_back(now);
  return true;
}

supervisor_steps::time supervisor_steps::next_delay(child& c) {
  const restart_backoff& b = settings_.backoff;
  const unsigned attempt = c.attempts;
  if (c.attempts < 64) ++c.attempts;
  if (attempt == 0) return time::zero();
  const double base = std::min(static_cast<double>(std::chrono::nanoseconds(b.initial).count()) *
                                   std::ldexp(1.0, static_cast<int>(std::min(attempt - 1, 62u))),
                               static_cast<double>(std::chrono::nanoseconds(b.maximum).count()));
  const double spread = std::uniform_real_distribution<double>(-1.0, 1.0)(random_);
  return time(static_cast<std::int64_t>(std::max(0.0, base * (1.0 + b.jitter * spread))));
}

}  // namespace herd::detail
