/// @file herd/pipeline.hpp
/// Producer-consumer pipelines: a source, typed stages run by worker processes or by coroutines
/// in the parent, and a sink, joined by bounded links (pypeln, mpipe, Ray Data, GNU parallel).
///
///     std::vector<std::size_t> lengths = co_await herd::from_range(ex, files)
///         .map("read", read_file, {.processes = 4})
///         .filter("non-empty", not_empty)
///         .map("length", text_length)
///         .async_collect();
///
/// Each link holds at most its stage's `buffer` items, so a slow stage throttles every stage
/// upstream and memory stays bounded whatever the source's size. End of stream flows through
/// every stage; the first error (or `on_error::skip` counts it and goes on) stops every stage,
/// its processes included, and is thrown as `herd::pipeline_error` naming the stage and the
/// item's index. (Chains of programs, `a | b`, are `herd::async_run_pipeline` in herd/run.hpp.)
#pragma once

#include <herd/codec.hpp>
#include <herd/command.hpp>
#include <herd/config.hpp>
#include <herd/detail/travelling_call.hpp>
#include <herd/error.hpp>
#include <herd/start_method.hpp>
#include <herd/stop_policy.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace herd {

template <typename T>
class queue;

/// What a stage does with an item it failed on.
enum class on_error {
  stop,  // the pipeline stops (every stage, by its stop policy) and async_run throws
  skip,  // the item is dropped and counted in the summary; the pipeline goes on
};

/// How a stage runs.
struct stage_options {
  /// Worker processes of a function stage (`map`, `filter`, `flat_map`); 0: `herd::cpu_count()`.
  std::size_t processes = 0;
  /// Items a parent stage (`map_in_parent`) works on at once.
  std::size_t concurrency = 1;
  /// Items waiting in the link into this stage, at most (0: 64). The stage upstream waits
  /// while it is full: that is the backpressure.
  std::size_t buffer = 0;
  /// Results leave in the order their items came in (the default for every stage); false:
  /// as they are ready.
  bool ordered = true;
  on_error errors = on_error::stop;
  /// Function stages: items sent to a worker at once, at most (0: 64). How many, below that,
  /// follows how long items take: about 2 ms of work a chunk, one at a time for slow items.
  std::size_t chunk = 0;
  /// Function stages: how often items lost to a worker's death run again (pool rules), and
  /// after how many deaths an item is quarantined as poison.
  std::size_t retries = 0;
  std::size_t poison_after = 2;
  /// Function stages: a chunk running longer than this fails with `errc::timed_out` (0: no limit).
  std::chrono::milliseconds task_timeout{0};
  /// Function stages: how workers are started (see herd/start_method.hpp) and stopped.
  std::optional<herd::start_method> start_method{};
  stop_policy stop{false, SIGTERM, std::chrono::seconds(1)};
};

/// How a pipeline runs.
struct pipeline_options {
  /// Redraws a line per stage on stderr while it runs (a TTY: in place, five times a second;
  /// otherwise one plain line every `progress_every`).
  bool progress = false;
  std::chrono::milliseconds progress_every{2000};
  /// Where the progress goes (a descriptor; default stderr).
  int progress_fd = 2;
};

/// One stage's counts, live (`pipeline::metrics()`) or final (the summary).
struct stage_metrics {
  std::string name;
  std::size_t items_in = 0;    // taken from its link
  std::size_t items_out = 0;   // results given to the next stage
  std::size_t failed = 0;      // items that failed (stopping, or skipped)
  std::size_t queued = 0;      // items waiting in its link now
  std::size_t busy = 0;        // chunks or items being worked on now
  double busy_seconds = 0;     // time with at least one item being worked on
  double rate = 0;             // items out per second, lately
};

/// What async_run delivers: the source's count, every stage's (the source first, the sink last).
struct pipeline_summary {
  std::vector<stage_metrics> stages;
  double seconds = 0;
};

/// The first error of a pipeline that stops: the stage, the item's index at the source (or, for a
/// source or a program stage, the count of items it had produced), and the original failure
/// (`original()`, rethrowable). `code()` is the original's (`worker_died`, `child_exception`, …).
class pipeline_error : public boost::system::system_error {
 public:
  pipeline_error(error_code code, const std::string& what, std::string stage, std::uint64_t index,
                 std::exception_ptr original);
  const std::string& stage() const noexcept { return stage_; }
  std::uint64_t index() const noexcept { return index_; }
  std::exception_ptr original() const noexcept { return original_; }

 private:
  std::string stage_;
  std::uint64_t index_;
  std::exception_ptr original_;
};

namespace detail {

struct pipeline_core;

/// What a source produces with: `co_await out.emit(bytes)`, false once the pipeline stops.
class pipeline_emitter {
 public:
  explicit pipeline_emitter(std::shared_ptr<pipeline_core> core) : core_(std::move(core)) {}
  asio::awaitable<bool> emit(std::string bytes);

 private:
  std::shared_ptr<pipeline_core> core_;
};

using source_body = std::function<asio::awaitable<void>(pipeline_emitter&)>;
/// A parent stage: one item's bytes in, its results' bytes out.
using parent_body = std::function<asio::awaitable<void>(std::string item, std::vector<std::string>& out)>;
/// The sink: one item's bytes.
using sink_body = std::function<asio::awaitable<void>(std::string item)>;

struct stage_spec {
  enum class kind { worker, parent, program };
  std::string name;
  kind what = kind::worker;
  stage_options options;
  task_entry entry = nullptr;  // worker: the chunk trampoline
  std::uint64_t callable = 0;
  const std::type_info* type = nullptr;
  const void* address = nullptr;
  parent_body body;  // parent
  std::optional<command> program;  // program
};

struct source_spec {
  std::string name;
  source_body body;
  std::optional<std::size_t> size;  // known in advance: the progress display's ETA
};

/// Builds and runs: the type-erased part (src/pipeline.cpp).
struct pipeline_plan {
  asio::any_io_executor ex;
  source_spec source;
  std::vector<stage_spec> stages;
  pipeline_options options;
};

std::shared_ptr<pipeline_core> make_pipeline_core(pipeline_plan plan);
asio::awaitable<pipeline_summary> run_pipeline(std::shared_ptr<pipeline_core> core, std::string sink_name,
                                               sink_body sink);
std::vector<stage_metrics> pipeline_metrics(const std::shared_ptr<pipeline_core>& core);

/// A merged source: every body at once, each emitting into the same link (src/pipeline.cpp).
source_body merged_sources(std::vector<source_body> inputs);
/// What a pipeline's sink throws when the pipeline it feeds has stopped.
[[noreturn]] void throw_downstream_stopped();

/// The shared upstream of tee()'s branches (src/pipeline.cpp).
struct tee_hub;
/// `upstream(sink)` runs the upstream pipeline into `sink`; `branches` sources read it, each
/// item given to every one, at most `buffer` ahead of the slowest.
std::vector<source_body> tee_sources(std::function<asio::awaitable<void>(sink_body)> upstream, std::size_t branches,
                                     std::size_t buffer);
/// Throws errc::not_running: a pipeline moved from, already extended or already run.
[[noreturn]] void throw_used_pipeline(const char* what);

/// In a worker: appends the exception being handled as an item's failure (its type and what()).
void encode_item_failure(encoder& out);

// The shapes of a function stage: what one item gives.
enum class stage_shape { map, filter, flat_map };

// A chunk of a function stage, in a worker: a count, then the items; for each item, a tag (1:
// its results follow as a count and that many encoded values, 0: it failed, its exception's
// type and message follow). One item's exception fails that item only.
template <typename F, typename T, stage_shape Shape>
void invoke_stage_chunk(std::uint64_t callable, std::string_view encoded, std::string& out) {
  decoder in(encoded);
  const std::size_t count = in.size();
  F f = callable_from<F>(callable);
  encoder e(out);
  for (std::size_t i = 0; i < count; ++i) {
    T item = in.value<T>();
    try {
      if constexpr (Shape == stage_shape::map) {
        auto result = call(f, item);
        e.value(std::uint8_t{1});
        e.size(1);
        e.value(herd::encode(result));
      } else if constexpr (Shape == stage_shape::filter) {
        const bool keep = static_cast<bool>(call(f, item));
        e.value(std::uint8_t{1});
        e.size(keep ? 1 : 0);
        if (keep) e.value(herd::encode(item));
      } else {
        auto results = call(f, item);
        e.value(std::uint8_t{1});
        e.size(results.size());
        for (const auto& r : results) e.value(herd::encode(r));
      }
    } catch (...) {
      e.value(std::uint8_t{0});
      encode_item_failure(e);
    }
  }
}

// What a function stage's function gives; `int` stands in when it cannot be called (the
// static_asserts have said why), so that no second error buries the first.
template <bool Callable, typename F, typename T>
struct stage_result {
  using type = int;
};
template <typename F, typename T>
struct stage_result<true, F, T> {
  using type = std::decay_t<std::invoke_result_t<F&, T&>>;
};
template <typename F, typename T>
using stage_result_t = typename stage_result<std::is_invocable_v<F&, T&>, F, T>::type;

template <typename R, bool Range = requires(R& r) { std::begin(r); }>
struct element_of {
  using type = int;
};
template <typename R>
struct element_of<R, true> {
  using type = std::decay_t<decltype(*std::begin(std::declval<R&>()))>;
};

}  // namespace detail

template <typename T>
class pipeline;
template <typename T, typename... More>
pipeline<T> merge(pipeline<T> first, More... more);
template <typename T>
std::vector<pipeline<T>> tee(pipeline<T> upstream, std::size_t branches, std::size_t buffer = 64);

/// A pipeline whose items, as its last stage gives them, are `T`. Built from a source
/// (`herd::from_range`, …), extended by stages, run by one of its `async_…` sinks.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: unsafe. It runs on its executor (one thread, or
///   use a strand).
template <typename T>
class pipeline {
  static_assert(encodable<T>, "herd::pipeline: the items of a stage must be encodable (see herd/codec.hpp)");

 public:
  using value_type = T;

  explicit pipeline(detail::pipeline_plan plan) : plan_(std::make_unique<detail::pipeline_plan>(std::move(plan))) {}
  pipeline(pipeline&&) noexcept = default;
  pipeline& operator=(pipeline&&) noexcept = default;

  /// `f(item)` in worker processes (`options.processes` of them): the next stage gets what it
  /// returns. `f` is a function, a function pointer or a captureless lambda, as pool tasks are.
  /// A worker's death fails the items it held with `errc::worker_died` (pool rules: `retries`,
  /// `poison_after`).
  template <typename F>
  auto map(std::string name, F f, stage_options options = {}) && {
    using fn = std::decay_t<F>;
    check<fn>();
    using result = detail::stage_result_t<fn, T>;
    static_assert(!std::is_void_v<result>, "herd::pipeline::map: the stage function returns nothing");
    static_assert(encodable<result>, "herd::pipeline::map: the stage function's result cannot travel (see herd/codec.hpp)");
    return pipeline<result>(with_worker_stage<fn, detail::stage_shape::map>(std::move(name), f, options));
  }

  /// Items for which `f(item)` is true, decided in worker processes.
  template <typename F>
  pipeline filter(std::string name, F f, stage_options options = {}) && {
    using fn = std::decay_t<F>;
    check<fn>();
    static_assert(!callable<fn> || std::is_convertible_v<detail::stage_result_t<fn, T>, bool>,
                  "herd::pipeline::filter: the predicate must return something convertible to bool");
    return pipeline(with_worker_stage<fn, detail::stage_shape::filter>(std::move(name), f, options));
  }

  /// Every element of the range `f(item)` returns (a std::vector or another encodable
  /// container), computed in worker processes: one item to many (or none).
  template <typename F>
  auto flat_map(std::string name, F f, stage_options options = {}) && {
    using fn = std::decay_t<F>;
    check<fn>();
    using result = detail::stage_result_t<fn, T>;
    static_assert(!callable<fn> || requires(result& r) { std::begin(r); },
                  "herd::pipeline::flat_map: the stage function must return a range (a std::vector, …)");
    using element = typename detail::element_of<result>::type;
    static_assert(encodable<element>, "herd::pipeline::flat_map: the elements cannot travel (see herd/codec.hpp)");
    return pipeline<element>(with_worker_stage<fn, detail::stage_shape::flat_map>(std::move(name), f, options));
  }

  /// `f(item)` in this process, on the loop, `options.concurrency` items at once: for I/O. `f`
  /// may be any callable (captures welcome); it returns a value or an `asio::awaitable` of one.
  template <typename F>
  auto map_in_parent(std::string name, F f, stage_options options = {}) && {
    static_assert(std::is_invocable_v<F&, T&>,
                  "herd::pipeline::map_in_parent: the stage function cannot take the previous stage's items");
    using raw = std::invoke_result_t<F&, T&>;
    using result = typename detail::result_of_start<F, T>::type;  // unwrapped from an awaitable
    static_assert(!std::is_void_v<result>, "herd::pipeline::map_in_parent: the stage function returns nothing");
    static_assert(encodable<result>, "herd::pipeline::map_in_parent: the result must be encodable");
    detail::stage_spec s;
    s.name = std::move(name);
    s.what = detail::stage_spec::kind::parent;
    s.options = options;
    s.body = [f = std::move(f)](std::string bytes, std::vector<std::string>& out) mutable -> asio::awaitable<void> {
      T item = herd::decode<T>(bytes);
      if constexpr (detail::awaitable_traits<raw>::is_awaitable) {
        result r = co_await f(item);
        out.push_back(herd::encode(r));
      } else {
        out.push_back(herd::encode(static_cast<const result&>(f(item))));
      }
    };
    return pipeline<result>(with(std::move(s)));
  }

  /// An external program fed the items as lines of its stdin; its stdout's lines are the next
  /// stage's items (`T` is a string). Its own order; its stderr is inherited. It is stopped by
  /// the stage's stop policy when the pipeline stops; one that exits before its input is all
  /// written, or with a failure, fails the stage (`child_exited` or `child_killed`).
  pipeline<std::string> through(std::string name, command program, stage_options options = {}) && {
    static_assert(std::is_convertible_v<const T&, std::string_view>,
                  "herd::pipeline::through: a program stage takes lines of text: the items must be strings");
    detail::stage_spec s;
    s.name = std::move(name);
    s.what = detail::stage_spec::kind::program;
    s.options = options;
    s.program.emplace(std::move(program));
    return pipeline<std::string>(with(std::move(s)));
  }

  /// Runs the pipeline; `f(item)` (a value or an awaitable, in this process) sees every item
  /// of the last stage in turn. Completes when it has seen the last one.
  template <typename F>
  asio::awaitable<pipeline_summary> async_for_each(F f, std::string name = "sink") {
    static_assert(std::is_invocable_v<F&, T&>, "herd::pipeline::async_for_each: the sink cannot take the items");
    detail::sink_body body = [f = std::move(f)](std::string bytes) mutable -> asio::awaitable<void> {
      T item = herd::decode<T>(bytes);
      if constexpr (detail::awaitable_traits<std::invoke_result_t<F&, T&>>::is_awaitable)
        co_await f(item);
      else
        f(item);
    };
    return run(std::move(name), std::move(body));
  }

  /// Runs the pipeline and returns every item of the last stage (in order if every stage is
  /// ordered). `summary()` then has the counts.
  asio::awaitable<std::vector<T>> async_collect() {
    auto items = std::make_shared<std::vector<T>>();
    detail::sink_body body = [items](std::string bytes) -> asio::awaitable<void> {
      items->push_back(herd::decode<T>(bytes));
      co_return;
    };
    summary_ = co_await run("collect", std::move(body));
    co_return std::move(*items);
  }

  /// Runs the pipeline, putting every item into `q` (waiting while it is full); the queue is
  /// left open.
  asio::awaitable<pipeline_summary> async_into(queue<T>& q) {
    detail::sink_body body = [&q](std::string bytes) -> asio::awaitable<void> {
      T item = herd::decode<T>(bytes);
      co_await q.async_put(item);
    };
    return run("queue", std::move(body));
  }

  /// Runs the pipeline, writing every item as a line of `file` (truncated first); `T` is a
  /// string or a number.
  asio::awaitable<pipeline_summary> async_into_file(const std::filesystem::path& file);

  /// Counts of every stage now, while it runs (the source first, the sink last); empty before
  /// it runs. Call it on the pipeline's executor.
  std::vector<stage_metrics> metrics() const { return core_ ? detail::pipeline_metrics(core_) : std::vector<stage_metrics>{}; }
  /// The summary of the last async_collect.
  const pipeline_summary& summary() const noexcept { return summary_; }

  /// This pipeline as the source of another (merge, tee): it runs when that one does, its items
  /// emitted there as they leave its last stage.
  detail::source_body as_source() && {
    auto held = std::make_shared<pipeline>(std::move(*this));
    return [held](detail::pipeline_emitter& out) -> asio::awaitable<void> {
      co_await held->run("into the next pipeline", [&out](std::string bytes) -> asio::awaitable<void> {
        if (!co_await out.emit(std::move(bytes))) detail::throw_downstream_stopped();
      });
    };
  }

  /// False once moved from, extended by a stage (which consumes it) or run (a pipeline runs once).
  bool valid() const noexcept { return plan_ != nullptr; }

 private:
  template <typename U>
  friend class pipeline;
  template <typename U, typename... More>
  friend pipeline<U> merge(pipeline<U> first, More... more);
  template <typename U>
  friend std::vector<pipeline<U>> tee(pipeline<U> upstream, std::size_t branches, std::size_t buffer);

  detail::pipeline_plan take_plan() && { return take("use"); }
  const asio::any_io_executor& executor() const { return plan_->ex; }
  const pipeline_options& options() const { return plan_->options; }

  // A function stage can be built: it travels and takes these items.
  template <typename F>
  static constexpr bool callable = detail::travelling_callable<F> && std::is_invocable_v<F&, T&>;

  template <typename F>
  static constexpr void check() {
    static_assert(detail::travelling_callable<F>,
                  "herd::pipeline: a function stage runs in worker processes, so its function must be a "
                  "function, a function pointer or a captureless lambda (a closure's state cannot reach a "
                  "worker); use map_in_parent for a lambda with captures");
    static_assert(std::is_invocable_v<F&, T&>,
                  "herd::pipeline: the stage function cannot take the previous stage's items: its parameter "
                  "must accept the type the previous stage gives (the source's item, or the previous "
                  "function's result)");
  }

  // The plan, taken out of this pipeline: it is empty afterwards.
  detail::pipeline_plan take(const char* what) {
    if (!plan_) detail::throw_used_pipeline(what);
    detail::pipeline_plan plan = std::move(*plan_);
    plan_.reset();
    return plan;
  }

  detail::pipeline_plan with(detail::stage_spec s) {
    detail::pipeline_plan plan = take("add a stage to");
    plan.stages.push_back(std::move(s));
    return plan;
  }

  template <typename F, detail::stage_shape Shape>
  detail::pipeline_plan with_worker_stage(std::string name, const F& f, const stage_options& options) {
    if constexpr (!callable<F>) {
      return {};  // not built: check() has said why
    } else {
      detail::stage_spec s;
      s.name = std::move(name);
      s.what = detail::stage_spec::kind::worker;
      s.options = options;
      s.entry = &detail::invoke_stage_chunk<F, T, Shape>;
      s.callable = detail::callable_word(f);
      s.type = &typeid(F);
      s.address = detail::function_address(f);
      return with(std::move(s));
    }
  }

  asio::awaitable<pipeline_summary> run(std::string sink_name, detail::sink_body body) {
    core_ = detail::make_pipeline_core(take("run"));
    return detail::run_pipeline(core_, std::move(sink_name), std::move(body));
  }

  std::unique_ptr<detail::pipeline_plan> plan_;
  std::shared_ptr<detail::pipeline_core> core_;
  pipeline_summary summary_;
};

/// The items of a range, read lazily as the pipeline takes them (an endless range works). An
/// lvalue range is read where it is (keep it alive while the pipeline runs); a temporary is
/// moved into the source.
template <typename Range>
auto from_range(const asio::any_io_executor& ex, Range&& range, pipeline_options options = {}) {
  using item = detail::travel_t<decltype(*std::begin(range))>;
  static_assert(encodable<item>, "herd::from_range: the range's items must be encodable (see herd/codec.hpp)");
  detail::pipeline_plan plan{ex, {}, {}, options};
  plan.source.name = "source";
  if constexpr (requires { std::size(range); }) plan.source.size = static_cast<std::size_t>(std::size(range));
  // Read where it is (a pointer), or moved into the source (a shared copy): both dereference.
  auto read = [](auto held) -> detail::source_body {
    return [held](detail::pipeline_emitter& out) -> asio::awaitable<void> {
      for (auto it = std::begin(*held); it != std::end(*held); ++it) {
        const item value(*it);
        if (!co_await out.emit(herd::encode(value))) co_return;
      }
    };
  };
  if constexpr (std::is_lvalue_reference_v<Range>)
    plan.source.body = read(&range);
  else
    plan.source.body = read(std::make_shared<std::decay_t<Range>>(std::move(range)));
  return pipeline<item>(std::move(plan));
}

/// The items a coroutine yields: `producer(emit)` calls `co_await emit(item)`, which is false
/// once the pipeline stops (then return).
template <typename T, typename Producer>
pipeline<T> from_producer(const asio::any_io_executor& ex, Producer producer, pipeline_options options = {}) {
  detail::pipeline_plan plan{ex, {}, {}, options};
  plan.source.name = "producer";
  plan.source.body = [producer = std::move(producer)](detail::pipeline_emitter& out) mutable -> asio::awaitable<void> {
    auto emit = [&out](const T& item) { return out.emit(herd::encode(item)); };
    co_await producer(emit);
  };
  return pipeline<T>(std::move(plan));
}

/// The items taken from `q` until it is closed (and empty).
template <typename T>
pipeline<T> from_queue(const asio::any_io_executor& ex, queue<T>& q, pipeline_options options = {}) {
  detail::pipeline_plan plan{ex, {}, {}, options};
  plan.source.name = "queue";
  plan.source.body = [&q](detail::pipeline_emitter& out) -> asio::awaitable<void> {
    for (;;) {
      auto [ec, item] = co_await q.async_get(asio::as_tuple(asio::deferred));
      if (ec == errc::closed) co_return;
      if (ec) throw boost::system::system_error(ec, "herd::from_queue");
      if (!co_await out.emit(herd::encode(item))) co_return;
    }
  };
  return pipeline<T>(std::move(plan));
}

/// The lines of a text file (without their '\n'). A file that cannot be opened fails the
/// pipeline, naming it.
pipeline<std::string> from_file_lines(const asio::any_io_executor& ex, std::filesystem::path file,
                                      pipeline_options options = {});

/// The lines a program writes to its stdout (without their '\n'). A program that exits with a
/// failure fails the pipeline (its status and stderr's last lines in the message).
pipeline<std::string> from_command_lines(const asio::any_io_executor& ex, command cmd, pipeline_options options = {});

/// Fan-in: one pipeline of the items of every input, as they come (each input's own order is
/// kept). The inputs run together when it runs; the first error of any stops them all; it is
/// reported with the stage named "merge" and the original error (a `pipeline_error` of the
/// input) in `original()`. The executor and the progress display are the first input's.
template <typename T, typename... More>
pipeline<T> merge(pipeline<T> first, More... more) {
  static_assert((std::is_same_v<More, pipeline<T>> && ...), "herd::merge: every input must be a pipeline of the same items");
  if (!first.valid() || (!more.valid() || ...)) detail::throw_used_pipeline("merge");
  detail::pipeline_plan head = std::move(first).take_plan();
  detail::pipeline_plan plan{head.ex, {}, {}, head.options};
  plan.source.name = "merge";
  std::vector<detail::source_body> inputs;
  inputs.push_back(pipeline<T>(std::move(head)).as_source());
  (inputs.push_back(std::move(more).as_source()), ...);
  plan.source.body = detail::merged_sources(std::move(inputs));
  return pipeline<T>(std::move(plan));
}

/// Fan-out: `branches` pipelines that each get every item of `upstream` (a tee), to be extended
/// and run together (each must run: the upstream goes no further than `buffer` items ahead of the
/// slowest branch). The upstream starts when the first branch runs and stops when every branch
/// has stopped reading; its error fails every branch still reading.
template <typename T>
std::vector<pipeline<T>> tee(pipeline<T> upstream, std::size_t branches, std::size_t buffer) {
  if (!upstream.valid()) detail::throw_used_pipeline("tee");
  const asio::any_io_executor ex = upstream.executor();
  const pipeline_options options = upstream.options();
  auto held = std::make_shared<pipeline<T>>(std::move(upstream));
  auto run_upstream = [held](detail::sink_body sink) -> asio::awaitable<void> {
    co_await held->run("tee", std::move(sink));
  };
  std::vector<detail::source_body> sources = detail::tee_sources(std::move(run_upstream), branches, buffer);
  std::vector<pipeline<T>> out;
  for (std::size_t k = 0; k < sources.size(); ++k) {
    detail::pipeline_plan plan{ex, {}, {}, k == 0 ? options : pipeline_options{}};
    plan.source.name = "tee " + std::to_string(k + 1);
    plan.source.body = std::move(sources[k]);
    out.push_back(pipeline<T>(std::move(plan)));
  }
  return out;
}

namespace detail {
sink_body file_sink(const std::filesystem::path& file, std::function<std::string(std::string_view bytes)> line_of);
}

template <typename T>
asio::awaitable<pipeline_summary> pipeline<T>::async_into_file(const std::filesystem::path& file) {
  return run("file", detail::file_sink(file, [](std::string_view bytes) {
               T item = herd::decode<T>(bytes);
               if constexpr (std::is_convertible_v<const T&, std::string_view>)
                 return std::string(std::string_view(item));
               else
                 return std::to_string(item);
             }));
}

}  // namespace herd
