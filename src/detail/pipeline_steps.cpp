#include "pipeline_steps.hpp"

#include <herd/codec.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace herd::detail {

std::string encode_chunk(const std::vector<std::string_view>& items) {
  std::size_t total = 16;
  for (std::string_view item : items) total += item.size();
  std::string out;
  out.reserve(total);
  encoder e(out);
  e.size(items.size());
  for (std::string_view item : items) out.append(item);
  return out;
}

std::vector<item_outcome> decode_chunk_outcomes(std::string_view bytes, std::size_t items) {
  decoder d(bytes);
  std::vector<item_outcome> outcomes(items);
  for (item_outcome& outcome : outcomes) {
    const auto tag = d.value<std::uint8_t>();
    if (tag == 1) {
      outcome.ok = true;
      const std::size_t count = d.size();
      outcome.outputs.reserve(count);
      for (std::size_t i = 0; i < count; ++i) outcome.outputs.push_back(d.value<std::string>());
    } else if (tag == 0) {
      outcome.error_type = d.value<std::string>();
      outcome.error_message = d.value<std::string>();
    } else {
      decoder::fail("a pipeline chunk's item has an unknown tag");
    }
  }
  if (d.remaining() != 0) decoder::fail("bytes are left over after a pipeline chunk's items");
  return outcomes;
}

void chunk_sizer::finished(std::size_t items, double seconds) noexcept {
  if (items == 0 || seconds < 0) return;
  const double per_item = seconds / static_cast<double>(items);
  per_item_ = per_item_ == 0 ? per_item : 0.7 * per_item_ + 0.3 * per_item;
  const double fitting = per_item_ > 0 ? target_ / per_item_ : static_cast<double>(most_);
  size_ = static_cast<std::size_t>(std::clamp(fitting, 1.0, static_cast<double>(most_)));
}

double rate_meter::sample(std::size_t count, double seconds) noexcept {
  if (!started_) {
    started_ = true;
    last_count_ = count;
    last_seconds_ = seconds;
    // Until there are two samples: the average since the start.
    rate_ = seconds > 0 ? static_cast<double>(count) / seconds : 0;
    return rate_;
  }
  const double span = seconds - last_seconds_;
  if (span <= 0) return rate_;
  const double now = static_cast<double>(count - last_count_) / span;
  // Weighted by the span, so that a second's samples count as much, however often they come.
  const double weight = std::min(1.0, span);
  rate_ = rate_ == 0 ? now : rate_ + weight * (now - rate_);
  last_count_ = count;
  last_seconds_ = seconds;
  return rate_;
}

std::string short_count(double value) {
  char text[32];
  const double magnitude = std::fabs(value);
  if (magnitude < 1000)
    std::snprintf(text, sizeof text, "%.0f", value);
  else if (magnitude < 1e6)
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  else if (magnitude < 1e9)
    std::snprintf(text, sizeof text, "%.1fM", value / 1e6);
  else
    std::snprintf(text, sizeof text, "%.1fG", value / 1e9);
  return text;
}

std::string short_duration(std::optional<double> seconds) {
  if (!seconds || !std::isfinite(*seconds) || *seconds < 0) return "--";
  const long total = std::lround(*seconds);
  char text[32];
  if (total >= 3600)
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
  else
    std::snprintf(text, sizeof text, "%ld:%02ld", total / 60, total % 60);
  return text;
}

std::vector<std::string> progress_lines(const std::vector<stage_metrics>& stages, std::optional<std::size_t> total,
                                        double elapsed_seconds) {
  std::vector<std::string> lines;
  std::size_t width = 0;
  for (const stage_metrics& s : stages) width = std::max(width, s.name.size());
  std::string head = "pipeline " + short_duration(elapsed_seconds);
  if (total && !stages.empty()) {
    // The source's count: ahead of the sink by what the links hold, and known for any shape
    // of stages (a filter or flat_map changes the sink's).
    const stage_metrics& source = stages.front();
    const double done = static_cast<double>(source.items_out);
    const double share = *total == 0 ? 1.0 : std::min(1.0, done / static_cast<double>(*total));
    char percent[16];
    std::snprintf(percent, sizeof percent, "%.0f%%", share * 100);
    std::optional<double> left;
    if (done >= static_cast<double>(*total))
      left = 0;
    else if (source.rate > 0) left = (static_cast<double>(*total) - done) / source.rate;
    head += std::string(" ") + percent + " of " + short_count(static_cast<double>(*total)) + ", ETA " +
            short_duration(left);
  }
  lines.push_back(head);
  for (const stage_metrics& s : stages) {
    std::string line = "  " + s.name + std::string(width - s.name.size(), ' ');
    line += "  in " + short_count(static_cast<double>(s.items_in));
    line += "  out " + short_count(static_cast<double>(s.items_out));
    if (s.failed != 0) line += "  failed " + short_count(static_cast<double>(s.failed));
    line += "  queued " + short_count(static_cast<double>(s.queued));
    line += "  busy " + short_count(static_cast<double>(s.busy));
    line += "  " + short_count(s.rate) + "/s";
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string redraw(const std::vector<std::string>& lines, std::size_t previous) {
  std::string out;
  // Up to the first line drawn last time, then each line cleared and written again.
  if (previous > 0) out += "\x1b[" + std::to_string(previous) + "F";
  for (const std::string& line : lines) out += "\x1b[2K" + line + "\n";
  return out;
}

}  // namespace herd::detail
