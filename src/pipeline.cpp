// The running pipeline (herd/pipeline.hpp): one coroutine for the source, two for each stage (a
// feeder that takes items from its link and starts work on them, a collector that hands results
// on in order), one for the sink, all on one strand; bounded links between them. Items travel as
// their encoded bytes, so this part knows no types.
#include <herd/pipeline.hpp>
#include <herd/pool.hpp>
#include <herd/child.hpp>
#include <herd/process.hpp>
#include <herd/run.hpp>

#include "detail/await_all.hpp"
#include "detail/fork_child.hpp"
#include "detail/pipeline_steps.hpp"
#include "detail/unique_fd.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace herd {

pipeline_error::pipeline_error(error_code code, const std::string& what, std::string stage, std::uint64_t index,
                               std::exception_ptr original)
    : boost::system::system_error(code, what), stage_(std::move(stage)), index_(index), original_(original) {}

namespace detail {

struct pool_access {
  static std::shared_ptr<pool_core> core(const pool& p) { return p.core_; }
};

void encode_item_failure(encoder& out) {
  const exception_description d = describe_current_exception();
  out.value(d.type);
  out.value(d.message);
}

namespace {

using strand_type = asio::any_io_executor;  // the pipeline's executor: one thread, or a strand
using clock = std::chrono::steady_clock;

constexpr std::size_t default_buffer = 64;
constexpr std::size_t default_chunk = 64;

struct record {
  std::uint64_t index;  // the item's number at the source
  std::string bytes;
};

// Wakes every coroutine waiting on it (one strand: a wake cannot fall between a check and a
// wait). The timer never expires: waits end only by wake(), which cancels them all.
class signal {
 public:
  explicit signal(const strand_type& ex) : timer_(ex, clock::time_point::max()) {}
  asio::awaitable<void> wait() {
    ++waiting_;
    co_await timer_.async_wait(asio::as_tuple(asio::deferred));
    --waiting_;
  }
  // Every push and pop wakes its link's other side: a cancel only when someone waits.
  void wake() {
    if (waiting_ > 0) timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  std::size_t waiting_ = 0;
};

// A bounded link between two nodes.
class link {
 public:
  link(const strand_type& ex, std::size_t capacity) : capacity_(capacity), readable_(ex), writable_(ex) {}

  // False once the pipeline stops.
  asio::awaitable<bool> push(record r) {
    while (items_.size() >= capacity_ && !aborted_) co_await writable_.wait();
    if (aborted_) co_return false;
    items_.push_back(std::move(r));
    readable_.wake();
    co_return true;
  }
  // Up to `most` items, waiting for one; false at the end of the stream or once it stops.
  asio::awaitable<bool> pop_some(std::vector<record>& out, std::size_t most) {
    while (items_.empty() && !closed_ && !aborted_) co_await readable_.wait();
    if (aborted_ || items_.empty()) co_return false;
    while (!items_.empty() && out.size() < most) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    writable_.wake();
    co_return true;
  }
  void close() {
    closed_ = true;
    readable_.wake();
  }
  void abort() {
    aborted_ = true;
    readable_.wake();
    writable_.wake();
  }
  std::size_t size() const noexcept { return items_.size(); }

 private:
  std::deque<record> items_;
  std::size_t capacity_;
  bool closed_ = false;
  bool aborted_ = false;
  signal readable_, writable_;
};

struct counters {
  std::string name;
  std::size_t in = 0, out = 0, failed = 0, busy = 0;
  clock::time_point busy_since{};
  double busy_seconds = 0;
  rate_meter rate;

  void started_work() {
    if (busy++ == 0) busy_since = clock::now();
  }
  void ended_work() {
    if (--busy == 0) busy_seconds += std::chrono::duration<double>(clock::now() - busy_since).count();
  }
};

// What a unit of a stage (a chunk in a worker, an item in the parent) came back with.
struct unit_result {
  std::vector<std::uint64_t> indices;
  std::exception_ptr failure;          // the whole unit failed (a worker died, a timeout, …)
  std::vector<item_outcome> outcomes;  // else: one per item
};

std::exception_ptr item_failure(const item_outcome& o, const std::string& function) {
  return std::make_exception_ptr(child_error(o.error_type, o.error_message, 0, "pipeline worker", function));
}

}  // namespace

struct pipeline_core : std::enable_shared_from_this<pipeline_core> {
  struct stage_runtime {
    stage_spec spec;
    std::optional<herd::pool> workers;
    std::shared_ptr<pool_core> workers_core;
    std::string function;  // for messages
    reorder_buffer<unit_result> results;
    chunk_sizer chunks;
    signal room, ready;   // a unit may start; a result may be released
    bool feeding = true;  // the feeder still takes items
    std::map<std::uint64_t, std::unique_ptr<asio::cancellation_signal>> parent_units;
    std::optional<child> program;  // a program stage's program
    bool input_refused = false;    // it stopped reading before its input was all written
    stage_runtime(stage_spec s, const strand_type& ex)
        : spec(std::move(s)),
          results(spec.options.ordered),
          chunks(spec.options.chunk != 0 ? spec.options.chunk : default_chunk),
          room(ex),
          ready(ex) {}
  };

  pipeline_core(pipeline_plan p)
      : plan(std::move(p)), strand(plan.ex), finished_signal(strand), ticker(strand) {}

  pipeline_plan plan;
  strand_type strand;
  std::vector<std::unique_ptr<link>> links;  // links[i] feeds stage i, the last one the sink
  std::vector<std::unique_ptr<stage_runtime>> stages;
  std::vector<counters> counts;  // the source, each stage, the sink
  asio::cancellation_signal source_cancel, sink_cancel;
  signal finished_signal;
  asio::steady_timer ticker;
  int running = 0;
  bool started = false, stopping = false, finished = false;
  bool source_active = false, sink_active = false;  // their coroutines have not ended
  clock::time_point began{};
  std::exception_ptr first_error;
  std::size_t error_node = 0;
  std::uint64_t error_index = 0;
  std::size_t lines_drawn = 0;

  std::size_t sink_node() const { return stages.size() + 1; }

  // ----- stopping -----

  void fail(std::size_t node, std::uint64_t index, std::exception_ptr error) {
    if (!first_error && error) {
      first_error = error;
      error_node = node;
      error_index = index;
    }
    stop_all(node);
  }

  // `from`: the node whose coroutine calls this, if any: it is not cancelled from within (Asio
  // would throw out of its co_spawn entry point), it ends by itself.
  void stop_all(std::size_t from = ~std::size_t{0}) {
    if (stopping) return;
    stopping = true;
    for (auto& l : links) l->abort();
    for (auto& s : stages) {
      if (s->workers) s->workers->terminate();
      if (s->program) s->program->terminate();
      for (auto& [sequence, cancel] : s->parent_units) cancel->emit(asio::cancellation_type::terminal);
      s->room.wake();
      s->ready.wake();
    }
    if (source_active && from != 0) source_cancel.emit(asio::cancellation_type::terminal);
    if (sink_active && from != sink_node()) sink_cancel.emit(asio::cancellation_type::terminal);
  }

  // ----- the nodes -----

  // `running` counts every node before the first is spawned: one that ends at once must not
  // look like the last.
  void spawn(asio::awaitable<void> body, asio::cancellation_signal* cancel = nullptr) {
    auto done = [self = shared_from_this()](std::exception_ptr) {
      if (--self->running == 0) self->end();
    };
    if (cancel != nullptr)
      asio::co_spawn(strand, std::move(body), asio::bind_cancellation_slot(cancel->slot(), std::move(done)));
    else
      asio::co_spawn(strand, std::move(body), std::move(done));
  }

  void end() {
    finished = true;
    ticker.cancel();
    draw_progress(true);
    finished_signal.wake();
  }

  asio::awaitable<void> run_source() {
    pipeline_emitter out(shared_from_this());
    try {
      co_await plan.source.body(out);
    } catch (...) {
      if (!stopping) fail(0, counts[0].out, std::current_exception());
    }
    links[0]->close();
    source_active = false;
  }

  asio::awaitable<bool> emit(std::string bytes) {
    if (stopping) co_return false;
    record r{counts[0].out, std::move(bytes)};
    const bool taken = co_await links[0]->push(std::move(r));
    if (taken) ++counts[0].out;
    co_return taken;
  }

  std::size_t unit_limit(const stage_runtime& s) const {
    if (s.spec.what == stage_spec::kind::parent) return std::max<std::size_t>(1, s.spec.options.concurrency);
    return 2 * s.workers->size();
  }

  asio::awaitable<void> feed(std::size_t i) {
    stage_runtime& s = *stages[i];
    counters& c = counts[i + 1];
    for (;;) {
      while (s.results.outstanding() >= unit_limit(s) && !stopping) co_await s.room.wait();
      if (stopping) break;
      const std::size_t chunk = s.spec.what == stage_spec::kind::parent ? 1 : s.chunks.next();
      std::vector<record> batch;
      if (!co_await links[i]->pop_some(batch, chunk)) break;
      c.in += batch.size();
      c.started_work();
      const std::uint64_t sequence = s.results.start();
      if (s.spec.what == stage_spec::kind::worker)
        start_chunk(i, sequence, std::move(batch));
      else
        start_parent_item(i, sequence, std::move(batch.front()));
    }
    s.feeding = false;
    s.ready.wake();
  }

  void start_chunk(std::size_t i, std::uint64_t sequence, std::vector<record> batch) {
    stage_runtime& s = *stages[i];
    std::vector<std::string_view> items;
    std::vector<std::uint64_t> indices;
    items.reserve(batch.size());
    indices.reserve(batch.size());
    for (const record& r : batch) {
      items.push_back(r.bytes);
      indices.push_back(r.index);
    }
    const task_call call{s.spec.entry, s.spec.callable, s.spec.type, s.spec.address};
    auto handler = [self = shared_from_this(), i, sequence, indices = std::move(indices), sent = clock::now()](
                       std::exception_ptr failure, std::string bytes) mutable {
      if (!failure)
        self->stages[i]->chunks.finished(indices.size(),
                                         std::chrono::duration<double>(clock::now() - sent).count());
      unit_result unit;
      unit.failure = failure;
      if (!failure) {
        try {
          unit.outcomes = decode_chunk_outcomes(bytes, indices.size());
        } catch (...) {
          unit.failure = std::current_exception();
        }
      }
      unit.indices = std::move(indices);
      self->finish_unit(i, sequence, std::move(unit));
    };
    pool_async_apply(s.workers_core, call, encode_chunk(items), asio::bind_executor(strand, std::move(handler)));
  }

  void start_parent_item(std::size_t i, std::uint64_t sequence, record item) {
    stage_runtime& s = *stages[i];
    auto cancel = std::make_unique<asio::cancellation_signal>();
    auto slot = cancel->slot();
    s.parent_units.emplace(sequence, std::move(cancel));
    auto outputs = std::make_shared<std::vector<std::string>>();
    const std::uint64_t index = item.index;
    auto work = s.spec.body(std::move(item.bytes), *outputs);
    asio::co_spawn(strand, std::move(work),
                   asio::bind_cancellation_slot(slot, [self = shared_from_this(), i, sequence, index,
                                                       outputs](std::exception_ptr failure) {
                     self->stages[i]->parent_units.erase(sequence);
                     unit_result unit;
                     unit.indices = {index};
                     if (failure) {
                       unit.failure = failure;
                     } else {
                       item_outcome o;
                       o.ok = true;
                       o.outputs = std::move(*outputs);
                       unit.outcomes.push_back(std::move(o));
                     }
                     self->finish_unit(i, sequence, std::move(unit));
                   }));
  }

  // A program stage: its items written as lines to its stdin, in order.
  asio::awaitable<void> feed_program(std::size_t i) {
    stage_runtime& s = *stages[i];
    counters& c = counts[i + 1];
    std::vector<record> batch;
    while (!stopping) {
      batch.clear();
      if (!co_await links[i]->pop_some(batch, default_chunk)) break;
      std::string lines;
      for (const record& r : batch) {
        lines += herd::decode<std::string>(r.bytes);
        lines += '\n';
      }
      c.in += batch.size();
      auto [ec, written] = co_await s.program->std_in().async_write(std::move(lines), asio::as_tuple(asio::deferred));
      if (ec) {
        s.input_refused = !stopping;  // it exited (or closed its stdin) early
        break;
      }
    }
    s.program->close_stdin();
  }

  // A program stage: its stdout's lines to the next stage, then its exit status checked.
  asio::awaitable<void> collect_program(std::size_t i) {
    stage_runtime& s = *stages[i];
    counters& c = counts[i + 1];
    c.started_work();
    for (;;) {
      auto [ec, line] = co_await s.program->std_out().async_read_line(asio::as_tuple(asio::deferred));
      if (ec) break;  // the end of its output (or it was stopped)
      record r{c.out, herd::encode(line)};
      if (!co_await links[i + 1]->push(std::move(r))) break;
      ++c.out;
    }
    auto [ec, status] = co_await s.program->async_wait(asio::as_tuple(asio::deferred));
    c.ended_work();
    if (!stopping && (!status.success() || s.input_refused)) {
      ++c.failed;
      if (s.spec.options.errors == on_error::skip) {
        links[i + 1]->close();
        co_return;
      }
      const error_code code = status.signal() != 0 ? errc::child_killed : status.success() ? errc::closed : errc::child_exited;
      const std::string why = status.success() ? "exited before reading all its input" : status.to_string();
      fail(i + 1, c.in,
           std::make_exception_ptr(boost::system::system_error(
               code, "program " + s.program->name() + " " + why + " (" + std::to_string(c.in) + " lines given, " +
                         std::to_string(c.out) + " read)")));
    }
    links[i + 1]->close();
  }

  void finish_unit(std::size_t i, std::uint64_t sequence, unit_result unit) {
    stage_runtime& s = *stages[i];
    counts[i + 1].ended_work();
    s.results.finish(sequence, std::move(unit));
    s.ready.wake();
  }

  asio::awaitable<void> collect(std::size_t i) {
    stage_runtime& s = *stages[i];
    counters& c = counts[i + 1];
    for (;;) {
      while (!s.results.ready() && !stopping && (s.feeding || s.results.outstanding() > 0)) co_await s.ready.wait();
      if (stopping || !s.results.ready()) break;
      unit_result unit = s.results.release();
      s.room.wake();
      for (std::size_t k = 0; k < unit.indices.size() && !stopping; ++k) {
        std::exception_ptr failure = unit.failure;
        if (!failure && !unit.outcomes[k].ok) failure = item_failure(unit.outcomes[k], s.function);
        if (failure) {
          ++c.failed;
          if (s.spec.options.errors == on_error::stop) fail(i + 1, unit.indices[k], failure);
          continue;
        }
        for (std::string& output : unit.outcomes[k].outputs) {
          record r{unit.indices[k], std::move(output)};
          if (!co_await links[i + 1]->push(std::move(r))) break;
          ++c.out;
        }
      }
    }
    links[i + 1]->close();
  }

  asio::awaitable<void> run_sink(sink_body sink) {
    counters& c = counts[sink_node()];
    link& in = *links.back();
    std::vector<record> batch;
    while (!stopping) {
      batch.clear();
      if (!co_await in.pop_some(batch, default_chunk)) break;
      c.in += batch.size();
      for (record& r : batch) {
        if (stopping) break;
        const std::uint64_t index = r.index;
        c.started_work();
        std::exception_ptr failure;
        try {
          co_await sink(std::move(r.bytes));
        } catch (...) {
          failure = std::current_exception();
        }
        c.ended_work();
        if (failure) {
          ++c.failed;
          if (!stopping) fail(sink_node(), index, failure);
          break;
        }
        ++c.out;
      }
    }
    sink_active = false;
  }

  // ----- progress -----

  std::vector<stage_metrics> snapshot(bool for_display) {
    const double elapsed = std::chrono::duration<double>(clock::now() - began).count();
    std::vector<stage_metrics> out;
    for (std::size_t n = 0; n < counts.size(); ++n) {
      counters& c = counts[n];
      stage_metrics m;
      m.name = c.name;
      m.items_in = c.in;
      m.items_out = c.out;
      m.failed = c.failed;
      m.busy = c.busy;
      m.queued = n > 0 && n - 1 < links.size() ? links[n - 1]->size() : 0;
      m.busy_seconds = c.busy_seconds;
      if (c.busy > 0) m.busy_seconds += std::chrono::duration<double>(clock::now() - c.busy_since).count();
      m.rate = for_display ? c.rate.sample(c.out, elapsed) : (elapsed > 0 ? static_cast<double>(c.out) / elapsed : 0);
      out.push_back(std::move(m));
    }
    return out;
  }

  void draw_progress(bool last) {
    if (!plan.options.progress) return;
    const double elapsed = std::chrono::duration<double>(clock::now() - began).count();
    const std::vector<std::string> lines = progress_lines(snapshot(true), plan.source.size, elapsed);
    std::string text;
    if (::isatty(plan.options.progress_fd) == 1) {
      text = redraw(lines, lines_drawn);
      lines_drawn = lines.size();
    } else {
      for (const std::string& line : lines) text += line + "\n";
    }
    (void)last;
    for (std::size_t at = 0; at < text.size();) {
      const ssize_t n = ::write(plan.options.progress_fd, text.data() + at, text.size() - at);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      at += static_cast<std::size_t>(n);
    }
  }

  asio::awaitable<void> show_progress() {
    const bool tty = ::isatty(plan.options.progress_fd) == 1;
    const auto every = tty ? std::chrono::milliseconds(200) : plan.options.progress_every;
    while (!finished) {
      ticker.expires_after(every);
      co_await ticker.async_wait(asio::as_tuple(asio::deferred));
      if (!finished) draw_progress(false);
    }
  }

  // ----- starting -----

  void start(std::string sink_name, sink_body sink) {
    started = true;
    began = clock::now();
    counts.push_back({});
    counts.back().name = plan.source.name;
    for (stage_spec& spec : plan.stages) {
      auto s = std::make_unique<stage_runtime>(std::move(spec), strand);
      counts.push_back({});
      counts.back().name = s->spec.name;
      const std::size_t buffer = s->spec.options.buffer != 0 ? s->spec.options.buffer : default_buffer;
      links.push_back(std::make_unique<link>(strand, buffer));
      if (s->spec.what == stage_spec::kind::worker) {
        pool_options o;
        o.processes = s->spec.options.processes;
        o.start_method = s->spec.options.start_method;
        o.retries = s->spec.options.retries;
        o.poison_after = s->spec.options.poison_after;
        o.task_timeout = s->spec.options.task_timeout;
        o.stop = s->spec.options.stop;
        o.name = s->spec.name;
        s->workers.emplace(plan.ex, o);
        s->workers_core = pool_access::core(*s->workers);
        s->function = describe_function(*s->spec.type, s->spec.address);
      }
      if (s->spec.what == stage_spec::kind::program)
        s->program.emplace(plan.ex, std::move(*s->spec.program).std_in(stdio::pipe()).std_out(stdio::pipe()));
      stages.push_back(std::move(s));
    }
    counts.push_back({});
    counts.back().name = sink_name;
    links.push_back(std::make_unique<link>(strand, default_buffer));

    running = static_cast<int>(2 + 2 * stages.size());
    source_active = sink_active = true;
    spawn(run_source(), &source_cancel);
    for (std::size_t i = 0; i < stages.size(); ++i) {
      if (stages[i]->program) {
        spawn(feed_program(i));
        spawn(collect_program(i));
      } else {
        spawn(feed(i));
        spawn(collect(i));
      }
    }
    spawn(run_sink(std::move(sink)), &sink_cancel);
    if (plan.options.progress) asio::co_spawn(strand, show_progress(), [](std::exception_ptr) {});
  }

  pipeline_summary summary() {
    pipeline_summary s;
    s.stages = snapshot(false);
    s.seconds = std::chrono::duration<double>(clock::now() - began).count();
    return s;
  }

  [[noreturn]] void throw_error() {
    const std::string stage = counts[error_node].name;
    error_code code = errc::stage_failed;
    std::string message;
    try {
      std::rethrow_exception(first_error);
    } catch (const boost::system::system_error& e) {
      code = e.code();
      message = e.what();
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
      message = "an exception not derived from std::exception";
    }
    throw pipeline_error(code, "herd: pipeline stage '" + stage + "' failed on item " + std::to_string(error_index) +
                                   ": " + message,
                         stage, error_index, first_error);
  }
};

namespace {

// Thrown by the sink of a pipeline that feeds another one that has stopped: it stops this one.
struct downstream_stopped : std::runtime_error {
  downstream_stopped() : std::runtime_error("herd: the pipeline this one feeds has stopped") {}
};

bool stopped_downstream(const std::exception_ptr& error) {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const pipeline_error& e) {
    return stopped_downstream(e.original());
  } catch (const downstream_stopped&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

void throw_downstream_stopped() { throw downstream_stopped(); }

source_body merged_sources(std::vector<source_body> inputs) {
  auto held = std::make_shared<std::vector<source_body>>(std::move(inputs));
  return [held](pipeline_emitter& out) -> asio::awaitable<void> {
    std::vector<asio::awaitable<void>> work;
    for (source_body& input : *held) work.push_back(input(out));
    co_await await_all(co_await asio::this_coro::executor, std::move(work));
  };
}

// tee(): the upstream runs once, into a sink that hands every item to each branch still reading.
struct tee_hub : std::enable_shared_from_this<tee_hub> {
  struct branch {
    std::deque<std::string> items;
    bool reading = true;
  };
  std::function<asio::awaitable<void>(sink_body)> upstream;
  std::vector<branch> branches;
  std::size_t buffer;
  bool started = false, ended = false;
  std::exception_ptr error;
  std::optional<signal> changed;

  bool anyone_reading() const {
    for (const branch& b : branches)
      if (b.reading) return true;
    return false;
  }
  bool room_for_all() const {
    for (const branch& b : branches)
      if (b.reading && b.items.size() >= buffer) return false;
    return true;
  }

  void start(const asio::any_io_executor& ex) {
    if (started) return;
    started = true;
    changed.emplace(ex);
    auto self = shared_from_this();
    sink_body sink = [self](std::string bytes) -> asio::awaitable<void> {
      while (self->anyone_reading() && !self->room_for_all()) co_await self->changed->wait();
      if (!self->anyone_reading()) throw_downstream_stopped();
      for (branch& b : self->branches)
        if (b.reading) b.items.push_back(bytes);
      self->changed->wake();
    };
    asio::co_spawn(ex, upstream(std::move(sink)), [self](std::exception_ptr failure) {
      self->error = failure;
      self->ended = true;
      self->changed->wake();
    });
  }

  // Marks branch `k` as no longer reading, whatever ends its source.
  struct leaving {
    tee_hub& hub;
    std::size_t k;
    ~leaving() {
      hub.branches[k].reading = false;
      hub.branches[k].items.clear();
      if (hub.changed) hub.changed->wake();
    }
  };

  asio::awaitable<void> read(std::size_t k, pipeline_emitter& out) {
    start(co_await asio::this_coro::executor);
    auto self = shared_from_this();  // alive while a branch reads
    leaving guard{*this, k};
    for (;;) {
      while (branches[k].items.empty() && !ended) co_await changed->wait();
      if (branches[k].items.empty()) {
        if (error && !stopped_downstream(error)) std::rethrow_exception(error);
        co_return;
      }
      std::string bytes = std::move(branches[k].items.front());
      branches[k].items.pop_front();
      changed->wake();
      if (!co_await out.emit(std::move(bytes))) break;
    }
    // This branch stopped reading: if it was the last, the upstream stops; wait for its end, so
    // that its processes are gone when this branch's run completes.
    branches[k].reading = false;
    changed->wake();
    if (!anyone_reading())
      while (!ended) co_await changed->wait();
  }
};

std::vector<source_body> tee_sources(std::function<asio::awaitable<void>(sink_body)> upstream, std::size_t branches,
                                     std::size_t buffer) {
  auto hub = std::make_shared<tee_hub>();
  hub->upstream = std::move(upstream);
  hub->branches.resize(branches);
  hub->buffer = std::max<std::size_t>(1, buffer);
  std::vector<source_body> sources;
  for (std::size_t k = 0; k < branches; ++k)
    sources.push_back([hub, k](pipeline_emitter& out) -> asio::awaitable<void> { co_await hub->read(k, out); });
  return sources;
}

asio::awaitable<bool> pipeline_emitter::emit(std::string bytes) {
  return core_->emit(std::move(bytes));
}

std::shared_ptr<pipeline_core> make_pipeline_core(pipeline_plan plan) {
  return std::make_shared<pipeline_core>(std::move(plan));
}

asio::awaitable<pipeline_summary> run_pipeline(std::shared_ptr<pipeline_core> core, std::string sink_name,
                                               sink_body sink) {
  core->start(std::move(sink_name), std::move(sink));
  bool cancelled = false;
  while (!core->finished) {
    co_await core->finished_signal.wait();
    if (!core->finished && (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
      // The awaiting coroutine was cancelled: everything stops, then the cancellation is reported.
      cancelled = true;
      core->stop_all();
      co_await asio::this_coro::reset_cancellation_state();
    }
  }
  // Its worker processes and programs are gone before it returns (or throws).
  for (auto& s : core->stages) {
    if (s->program) {
      auto [ec, status] = co_await s->program->async_wait(asio::as_tuple(asio::deferred));
      (void)ec;
    }
    if (!s->workers) continue;
    s->workers->close();
    auto [ec] = co_await s->workers->async_join(asio::as_tuple(asio::deferred));
    (void)ec;
  }
  if (cancelled && !core->first_error)
    throw boost::system::system_error(asio::error::operation_aborted, "herd: pipeline cancelled");
  if (core->first_error) core->throw_error();
  co_return core->summary();
}

std::vector<stage_metrics> pipeline_metrics(const std::shared_ptr<pipeline_core>& core) {
  return core->started ? core->snapshot(false) : std::vector<stage_metrics>{};
}

void throw_used_pipeline(const char* what) {
  throw boost::system::system_error(errc::not_running,
                                    std::string("herd::pipeline: cannot ") + what +
                                        " a pipeline that was moved from, extended by a stage or run already "
                                        "(a stage consumes its pipeline: std::move(p).map(…); a pipeline runs once)");
}

sink_body file_sink(const std::filesystem::path& file, std::function<std::string(std::string_view bytes)> line_of) {
  auto out = std::make_shared<std::ofstream>();
  return [out, file, line_of = std::move(line_of)](std::string bytes) -> asio::awaitable<void> {
    if (!out->is_open()) {
      out->open(file, std::ios::binary | std::ios::trunc);
      if (!*out)
        throw boost::system::system_error(errc::invalid_argument, "herd: cannot write pipeline output to '" +
                                                                      file.string() + "': " + std::strerror(errno));
    }
    *out << line_of(bytes) << '\n';
    if (!*out)
      throw boost::system::system_error(errc::invalid_argument, "herd: cannot write to '" + file.string() + "'");
    co_return;
  };
}

}  // namespace detail

pipeline<std::string> from_file_lines(const asio::any_io_executor& ex, std::filesystem::path file,
                                      pipeline_options options) {
  detail::pipeline_plan plan{ex, {}, {}, options};
  plan.source.name = "lines of " + file.filename().string();
  plan.source.body = [file](detail::pipeline_emitter& out) -> asio::awaitable<void> {
    detail::unique_fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
      throw boost::system::system_error(errc::invalid_argument, "herd::from_file_lines: cannot open '" +
                                                                    file.string() + "': " + std::strerror(errno));
    std::string pending;
    std::vector<char> buffer(64 * 1024);
    for (;;) {
      // A regular file cannot be waited on; a read of its next block is quick, and the loop
      // gets a turn between blocks.
      const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        throw boost::system::system_error(errc::invalid_argument,
                                          "herd::from_file_lines: cannot read '" + file.string() + "': " +
                                              std::strerror(errno));
      if (n == 0) break;
      pending.append(buffer.data(), static_cast<std::size_t>(n));
      std::size_t from = 0;
      for (std::size_t end; (end = pending.find('\n', from)) != std::string::npos; from = end + 1) {
        const std::string line = pending.substr(from, end - from);
        if (!co_await out.emit(herd::encode(line))) co_return;
      }
      pending.erase(0, from);
      co_await asio::post(co_await asio::this_coro::executor, asio::deferred);
    }
    if (!pending.empty()) co_await out.emit(herd::encode(pending));
  };
  return pipeline<std::string>(std::move(plan));
}

pipeline<std::string> from_command_lines(const asio::any_io_executor& ex, command cmd, pipeline_options options) {
  detail::pipeline_plan plan{ex, {}, {}, options};
  plan.source.name = "lines of " + cmd.program();
  plan.source.body = [cmd = std::move(cmd)](detail::pipeline_emitter& out) mutable -> asio::awaitable<void> {
    child program(co_await asio::this_coro::executor, cmd.std_out(stdio::pipe()));
    bool stopped = false;
    for (;;) {
      auto [ec, line] = co_await program.std_out().async_read_line(asio::as_tuple(asio::deferred));
      if (ec == asio::error::eof) break;
      if (ec) throw boost::system::system_error(ec, "herd::from_command_lines: reading " + program.name());
      if (!co_await out.emit(herd::encode(line))) {
        stopped = true;
        break;
      }
    }
    if (stopped) co_return;  // the child's destructor stops it
    const exit_status status = co_await program.async_wait();
    if (!status.success())
      throw boost::system::system_error(status.signal() != 0 ? errc::child_killed : errc::child_exited,
                                        "herd::from_command_lines: " + program.name() + " " + status.to_string());
  };
  return pipeline<std::string>(std::move(plan));
}

}  // namespace herd
