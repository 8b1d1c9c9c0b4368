// The pure parts of a pipeline (herd/pipeline.hpp): releasing a stage's results in order, what a
// worker's chunk says about each item, and the progress display's text. No I/O here.
#pragma once

#include <herd/pipeline.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herd::detail {

/// Units of work (chunks, items) of a stage finish in any order. An ordered stage releases them
/// in the order they were started; an unordered one as they finish.
template <typename Unit>
class reorder_buffer {
 public:
  explicit reorder_buffer(bool ordered) : ordered_(ordered) {}
  /// The sequence number of a unit being started.
  std::uint64_t start() noexcept { return started_++; }
  void finish(std::uint64_t sequence, Unit unit) { finished_.emplace(sequence, std::move(unit)); }
  bool ready() const noexcept {
    return !finished_.empty() && (!ordered_ || finished_.begin()->first == released_);
  }
  /// The next unit to release; only when ready().
  Unit release() {
    auto first = finished_.begin();
    Unit unit = std::move(first->second);
    finished_.erase(first);
    ++released_;
    return unit;
  }
  /// Started and not released yet.
  std::size_t outstanding() const noexcept { return static_cast<std::size_t>(started_ - released_); }

 private:
  bool ordered_;
  std::uint64_t started_ = 0;
  std::uint64_t released_ = 0;
  std::map<std::uint64_t, Unit> finished_;
};

/// How many items a function stage sends to a worker at once: enough for about `target` of
/// work, so that small items travel in bulk and slow ones are spread over the workers; one
/// until a chunk has come back to tell how long items take.
class chunk_sizer {
 public:
  explicit chunk_sizer(std::size_t most, double target_seconds = 0.002) : most_(most), target_(target_seconds) {}
  std::size_t next() const noexcept { return size_; }
  /// A chunk of `items` took `seconds` from being sent to its results (queueing included).
  void finished(std::size_t items, double seconds) noexcept;

 private:
  std::size_t most_;
  double target_;
  std::size_t size_ = 1;
  double per_item_ = 0;  // smoothed seconds per item; 0 until measured
};

/// One item of a worker's chunk: its results (encoded), or why it failed.
struct item_outcome {
  bool ok = false;
  std::vector<std::string> outputs;
  std::string error_type;
  std::string error_message;
};

/// A chunk's items as they travel to a worker: their count, then each one's encoding.
std::string encode_chunk(const std::vector<std::string_view>& items);
/// What invoke_stage_chunk wrote for `items` items. Throws system_error(errc::bad_message) for
/// anything else.
std::vector<item_outcome> decode_chunk_outcomes(std::string_view bytes, std::size_t items);

/// Items per second, smoothed over about a second of samples.
class rate_meter {
 public:
  /// `count` items done by `seconds` since the start; returns the rate.
  double sample(std::size_t count, double seconds) noexcept;
  double rate() const noexcept { return rate_; }

 private:
  std::size_t last_count_ = 0;
  double last_seconds_ = 0;
  double rate_ = 0;
  bool started_ = false;
};

/// "1.2k", "34.5M": a count in a few characters.
std::string short_count(double value);
/// "1:05", "2:03:04", "--" when unknown.
std::string short_duration(std::optional<double> seconds);

/// The progress display's text: one line per stage (name, in, out, failed, queued, busy, rate),
/// the first with the elapsed time and, when the source's size is known, the percentage read and
/// the time left (from the source's rate).
std::vector<std::string> progress_lines(const std::vector<stage_metrics>& stages, std::optional<std::size_t> total,
                                        double elapsed_seconds);

/// On a terminal: what redraws `lines` over the `previous` ones (cursor up, clear line).
std::string redraw(const std::vector<std::string>& lines, std::size_t previous);

}  // namespace herd::detail
