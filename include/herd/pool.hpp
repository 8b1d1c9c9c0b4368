/// @file herd/pool.hpp
/// Process pools: Python's `multiprocessing.Pool` and `concurrent.futures.ProcessPoolExecutor`,
/// awaitable, and robust where those hang.
///
/// `herd::pool` starts its worker processes at construction and runs tasks on them: a function,
/// a function pointer or a captureless lambda, with arguments and results through `herd::codec`,
/// no registration. Every result is an operation a coroutine awaits (`async_apply`, `async_map`,
/// `imap`, `submit`); the blocking forms (`apply`, `map`, `get`) serve a plain `main` and
/// threads that do not run the pool's event loop. A worker that dies fails only the tasks it was
/// running (`errc::worker_died`), is replaced, and the pool serves on.
#pragma once

#include <herd/codec.hpp>
#include <herd/config.hpp>
#include <herd/detail/chrono.hpp>
#include <herd/detail/initiate_as_tuple.hpp>
#include <herd/detail/travelling_call.hpp>
#include <herd/error.hpp>
#include <herd/exit_status.hpp>
#include <herd/start_method.hpp>
#include <herd/stop_policy.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace herd {

/// What runs once in each worker before its first task (Python's `initializer` and `initargs`).
/// Any callable runs in a forked worker. A function, a captureless lambda or an empty callable
/// also travels to spawn and forkserver workers, as does `worker_initializer(f, initargs...)`
/// with arguments herd::codec encodes (they are encoded once, when the pool is made).
class worker_initializer {
 public:
  worker_initializer() = default;
  template <typename F>
    requires(!std::is_same_v<std::decay_t<F>, worker_initializer> && std::is_invocable_v<std::decay_t<F>&>)
  worker_initializer(F&& f)  // NOLINT: implicit, like the std::function it was
      : type_(&typeid(std::decay_t<F>)), address_(detail::function_address(f)) {
    using fn = std::decay_t<F>;
    if constexpr (detail::why_not_travelling<fn>() == nullptr) travelling_ = detail::travelling_call_of<fn>(f);
    local_ = std::forward<F>(f);
  }
  template <typename F, typename... Args>
    requires(sizeof...(Args) > 0)
  worker_initializer(F f, Args... initargs) : type_(&typeid(F)), address_(detail::function_address(f)) {
    using fn = std::decay_t<F>;
    static_assert(detail::why_not_travelling<fn, Args...>() == nullptr,
                  "herd::worker_initializer(f, initargs...): f must be a function, a captureless lambda or an empty "
                  "callable, and every argument encodable (see herd/codec.hpp)");
    travelling_ = detail::travelling_call_of<fn>(f, initargs...);
    local_ = [f, initargs...]() mutable { detail::call(f, initargs...); };
  }

  explicit operator bool() const noexcept { return static_cast<bool>(local_); }
  /// Whether spawn and forkserver workers can run it.
  bool travels() const noexcept { return travelling_.has_value(); }
  /// What a forked worker runs.
  const std::function<void()>& local() const noexcept { return local_; }
  /// What a spawned or forkserver worker runs (only if travels()).
  const detail::travelling_call& travelling() const noexcept { return *travelling_; }
  /// What it is, for messages.
  const std::type_info& type() const noexcept { return *type_; }
  const void* address() const noexcept { return address_; }

 private:
  std::function<void()> local_;
  std::optional<detail::travelling_call> travelling_;
  const std::type_info* type_ = &typeid(void);
  const void* address_ = nullptr;
};

/// How a pool is made (Python's `Pool(processes, initializer, initargs, maxtasksperchild)`).
struct pool_options {
  /// Worker processes; 0 means `herd::cpu_count()`.
  std::size_t processes = 0;
  /// How workers are started. Nothing: what `herd::set_start_method` chose, else the forkserver
  /// if main called `herd::init` and the initializer travels, else fork. With spawn and
  /// forkserver a worker's start costs the loop the same whatever the parent's size.
  std::optional<herd::start_method> start_method{};
  /// Runs once in each worker before its first task (Python's initializer with its initargs:
  /// `[] { setup(42); }` or `{setup, 42}`). If it throws or kills the worker, the pool fails every
  /// task with `errc::initializer_failed` and the initializer's message, instead of restarting
  /// forever.
  worker_initializer initializer{};
  /// A worker leaves after this many tasks and a new one takes its place (0: never); each worker
  /// draws its own limit from the last quarter below it, so they do not all restart at once.
  std::size_t max_tasks_per_child = 0;
  /// A task running longer than this fails with `errc::timed_out`; its worker is stopped by
  /// `stop` and replaced (zero: no limit).
  std::chrono::milliseconds task_timeout{0};
  /// How often a task lost to a worker's death runs again (for idempotent work).
  std::size_t retries = 0;
  /// A task that was running when this many workers died fails with `errc::poison_task` and is
  /// never run again.
  std::size_t poison_after = 2;
  /// How workers are stopped: by terminate(), a task's timeout or cancellation, the destructor.
  stop_policy stop{false, SIGTERM, std::chrono::seconds(1)};
  /// For messages: workers are named "<name>-worker-<n>" (this_process::name() in a worker).
  std::string name = "pool";
  /// Coroutine tasks one worker runs at once, on its own io_context (1 to 64): for tasks that
  /// mostly wait (network, timers, child programs). Tasks that are plain functions still run one
  /// at a time. Cancelling a running task (or its timeout) cancels its coroutine; one that does
  /// not end within the stop policy's grace has its worker stopped, and the other tasks it was
  /// running then run again elsewhere.
  std::size_t concurrency_per_worker = 1;
  /// The bytes of each worker's inbox and outbox (shared memory; rounded up to a power of two,
  /// 4 KiB to 1 GiB). Larger messages travel in parts.
  std::size_t link_bytes = 256 * 1024;
};

/// How `async_map` and `async_starmap` cut their input.
struct map_options {
  /// Items sent to a worker at once; 0 means Python's default (the input divided by four times
  /// the number of workers, rounded up).
  std::size_t chunksize = 0;
};

/// How `imap` and `imap_unordered` pull their input.
struct imap_options {
  std::size_t chunksize = 1;
  /// Chunks in flight or waiting to be read, at most: the input is read no further ahead, so an
  /// endless input runs in bounded memory. 0: enough to keep every worker busy (twice what the
  /// pool sends ahead to each, at least four per worker, at most 512 per worker).
  std::size_t window = 0;
};

struct pool_worker_stats {
  int pid = 0;
  std::size_t tasks_done = 0;  // answered by this worker
  std::size_t holding = 0;     // sent to it and not answered yet
};

/// A snapshot of a pool, for a progress bar or a metrics endpoint.
struct pool_stats {
  std::size_t processes = 0;
  std::size_t queued = 0;   // waiting for a worker
  std::size_t running = 0;  // sent to a worker, not answered yet
  std::size_t done = 0;     // answered (returned or threw)
  std::size_t failed = 0;   // threw, or failed by the pool (worker died, timed out, cancelled…)
  std::size_t retried = 0;
  std::size_t worker_restarts = 0;  // workers replaced after dying (not recycling)
  std::vector<pool_worker_stats> workers;
};

/// Why a task has no result, when the pool (not the task) failed it: `code()` says what
/// (`worker_died`, `poison_task`, `timed_out`, `initializer_failed`, `closed`,
/// `operation_aborted`), what() says which function, which worker and how it ended.
class task_error : public boost::system::system_error {
 public:
  task_error(error_code code, const std::string& message, int pid, std::optional<exit_status> status,
             std::string function);
  /// The worker that ran it (0 if none did).
  int pid() const noexcept { return pid_; }
  /// How that worker ended, for `worker_died` and `poison_task`.
  const std::optional<exit_status>& status() const noexcept { return status_; }
  const std::string& function() const noexcept { return function_; }

 private:
  int pid_;
  std::optional<exit_status> status_;
  std::string function_;
};

namespace detail {

struct pool_core;
struct pool_access;  // the pipelines' way to the core (src/pipeline.cpp)
struct owned_loop;
struct task_state;
struct batch_state;
struct stream_state;

/// What a worker calls for a task, and what to call it in messages.
struct task_call {
  task_entry entry;
  std::uint64_t callable;
  const std::type_info* type;
  const void* address;
};


template <bool Callable, typename F, typename... Args>
struct pool_result {
  using type = int;  // a placeholder: the static_asserts have said what is wrong
};
template <typename F, typename... Args>
struct pool_result<true, F, Args...> {
  using type = task_result_t<F, Args...>;
};
template <typename F, typename... Args>
using pool_result_t = typename pool_result<startable<F, Args...>, F, Args...>::type;

template <typename F, typename... Args>
constexpr bool check_task() {
  static_assert(travelling_callable<F>,
                "herd::pool: a task must be a function, a function pointer, a captureless lambda or another empty "
                "callable: a running worker cannot receive a closure's state. Pass what the lambda captures as "
                "arguments instead.");
  static_assert(startable<F, Args...>, "herd::pool: the task cannot be called with these arguments");
  static_assert((encodable<Args> && ...),
                "herd::pool: an argument cannot travel to a worker (see herd/codec.hpp for what can)");
  if constexpr (startable<F, Args...>) {
    using result = task_result_t<F, Args...>;
    static_assert(std::is_void_v<result> || (encodable<result> && std::is_default_constructible_v<result>),
                  "herd::pool: the task's result cannot travel back (see herd/codec.hpp for what can)");
  }
  return true;
}

template <typename F, typename... Args>
task_call call_of(const F& f, task_entry entry) noexcept {
  return {entry, callable_word(f), &typeid(F), function_address(f)};
}


template <typename R>
R decode_result(std::string_view bytes) {
  if constexpr (!std::is_void_v<R>) return herd::decode<R>(bytes);
}

std::size_t pool_size(const pool_core& core) noexcept;
/// Throws (errc::invalid_argument) when the calling thread runs the pool's event loop: a blocking
/// call there would wait for the very loop it stops.
void check_blocking_allowed(const pool_core& core, const char* call);
/// What every call on an empty (moved-from) pool or handle reports: errc::not_running.
[[noreturn]] void throw_empty_pool();

// One task: submitted, then awaited (cancelling the await cancels the task) or kept in a handle.
void pool_async_apply(const std::shared_ptr<pool_core>& core, const task_call& call, std::string args,
                      asio::any_completion_handler<void(std::exception_ptr, std::string)> handler);
std::shared_ptr<task_state> pool_submit(const std::shared_ptr<pool_core>& core, const task_call& call, std::string args);
void task_async_get(const std::shared_ptr<task_state>& state,
                    asio::any_completion_handler<void(std::exception_ptr, std::string)> handler);
/// Blocks until the task has an outcome (false if `timeout` passed first).
bool task_wait(task_state& state, std::optional<std::chrono::milliseconds> timeout);
/// The outcome of a finished task: its error, or its result's bytes in `bytes`.
std::exception_ptr task_outcome(const task_state& state, std::string& bytes);
bool task_ready(const task_state& state) noexcept;
bool task_cancel(const std::shared_ptr<task_state>& state);

// Many tasks, one result each (the chunks of a map), awaited together.
void pool_async_batch(const std::shared_ptr<pool_core>& core, const task_call& call, std::vector<std::string> chunks,
                      asio::any_completion_handler<void(std::exception_ptr, std::vector<std::string>)> handler);
std::exception_ptr pool_batch(const std::shared_ptr<pool_core>& core, const task_call& call,
                              std::vector<std::string> chunks, std::vector<std::string>& results);

// A stream of chunk results (imap), fed by its consumer up to a window.
std::shared_ptr<stream_state> pool_stream(const std::shared_ptr<pool_core>& core, const task_call& call, bool ordered,
                                          std::size_t window);
/// Room for another chunk in the window.
bool stream_has_room(const stream_state& state) noexcept;
void stream_feed(const std::shared_ptr<stream_state>& state, std::string chunk);
/// No more chunks will be fed: the stream ends after the last one's result.
void stream_input_done(stream_state& state) noexcept;
/// The next chunk's result bytes; `end` once every chunk has been read.
void stream_async_next(const std::shared_ptr<stream_state>& state,
                       asio::any_completion_handler<void(std::exception_ptr, std::string, bool)> handler);
/// Blocking: false if `timeout` passed; else `error`, or `bytes`, or `end`.
bool stream_next(stream_state& state, std::optional<std::chrono::milliseconds> timeout, std::exception_ptr& error,
                 std::string& bytes, bool& end);
/// Stops the stream: what is queued is dropped, what runs is cancelled.
void stream_cancel(const std::shared_ptr<stream_state>& state);

void pool_close(pool_core& core);
void pool_terminate(pool_core& core);
void pool_async_join(const std::shared_ptr<pool_core>& core, const asio::any_io_executor& ex,
                     asio::any_completion_handler<void(error_code)> handler);
void pool_join(pool_core& core);
pool_stats pool_get_stats(const pool_core& core);


}  // namespace detail

/// A task submitted with `pool::submit`: Python's AsyncResult, ProcessPoolExecutor's future.
/// Destroying or cancelling the handle's wait leaves the task running; `cancel()` stops it.
template <typename Result>
class pool_task {
 public:
  using result_type = Result;
  explicit pool_task(std::shared_ptr<detail::task_state> state) noexcept : state_(std::move(state)) {}

  bool valid() const noexcept { return state_ != nullptr; }
  /// True once the task has a result or an error.
  bool ready() const noexcept { return state_ && detail::task_ready(*state_); }

  /// Waits for the result: `co_await t.async_get()` yields it or throws what async_apply would.
  /// @par Cancellation terminal, partial, total: stops waiting; the task runs on.
  asio::awaitable<Result> async_get() const {
    auto state = state_;
    if (!state) detail::throw_empty_pool();
    auto [error, bytes] = co_await detail::initiate_as_tuple<void(std::exception_ptr, std::string)>(
        [](auto handler, std::shared_ptr<detail::task_state> s) { detail::task_async_get(s, std::move(handler)); },
        state);
    if (error) std::rethrow_exception(error);
    co_return detail::decode_result<Result>(bytes);
  }

  /// Blocks until the result is there (not on the thread of the pool's event loop).
  Result get() const { return take(std::nullopt); }
  /// Blocks at most `timeout`: throws `system_error(errc::timed_out)` if the task still runs
  /// (it runs on, and a later get() still works), like Python's `get(timeout)`.
  Result get(std::chrono::milliseconds timeout) const { return take(timeout); }

  /// Removes the task if it is still queued or not yet started, or stops the worker running it
  /// (stop policy; the worker is replaced). The task then fails with `operation_aborted`. False
  /// if it had already finished.
  bool cancel() { return state_ && detail::task_cancel(state_); }

 private:
  Result take(std::optional<std::chrono::milliseconds> timeout) const {
    if (!state_) detail::throw_empty_pool();
    if (!detail::task_wait(*state_, timeout))
      throw boost::system::system_error(errc::timed_out, "herd: pool_task::get: the task is still running");
    std::string bytes;
    if (std::exception_ptr error = detail::task_outcome(*state_, bytes)) std::rethrow_exception(error);
    return detail::decode_result<Result>(bytes);
  }

  std::shared_ptr<detail::task_state> state_;
};

/// The results of `pool::imap` / `imap_unordered`, read one by one; it pulls its input lazily,
/// at most its window ahead of the reader.
template <typename Result, typename Input>
class imap_stream {
 public:
  /// `input`: the range itself (kept by the stream), or a pointer to a range the caller keeps.
  imap_stream(std::shared_ptr<detail::stream_state> state,
              std::conditional_t<std::is_pointer_v<Input>, Input, Input&&> input, std::size_t chunksize)
      : state_(std::move(state)), chunksize_(chunksize) {
    if constexpr (std::is_pointer_v<Input>)
      input_ = input;
    else
      input_ = std::make_unique<Input>(std::move(input));  // a stable address for its iterators
    next_ = std::begin(range());
    feed();
  }
  imap_stream(imap_stream&&) noexcept = default;
  imap_stream& operator=(imap_stream&& other) noexcept {
    if (this != &other) {
      if (state_) detail::stream_cancel(state_);
      state_ = std::move(other.state_);
      input_ = std::move(other.input_);
      next_ = std::move(other.next_);
      input_done_ = other.input_done_;
      chunksize_ = other.chunksize_;
      buffered_ = std::move(other.buffered_);
      front_ = other.front_;
    }
    return *this;
  }

  ~imap_stream() {
    if (state_) detail::stream_cancel(state_);
  }

  bool valid() const noexcept { return state_ != nullptr; }

  /// The next result (in input order for imap, as they come for imap_unordered), or empty once
  /// every result has been read. A task's failure is thrown in its place; the stream goes on.
  /// @par Cancellation terminal, partial, total: stops waiting; the tasks run on.
  asio::awaitable<std::optional<Result>> async_next() {
    if (!state_) detail::throw_empty_pool();
    while (buffered_.empty()) {
      feed();
      auto [error, bytes, end] = co_await detail::initiate_as_tuple<void(std::exception_ptr, std::string, bool)>(
          [](auto handler, std::shared_ptr<detail::stream_state> s) { detail::stream_async_next(s, std::move(handler)); },
          state_);
      if (error) std::rethrow_exception(error);
      if (end) co_return std::nullopt;
      unpack(bytes);
    }
    co_return take_front();
  }

  /// Blocking: the next result, or empty at the end (Python's `next(it)`).
  std::optional<Result> next() { return blocking_next(std::nullopt); }
  /// Blocking at most `timeout`: throws `system_error(errc::timed_out)` if no result came in time
  /// (Python's `next(timeout)`); the stream goes on.
  std::optional<Result> next(std::chrono::milliseconds timeout) { return blocking_next(timeout); }

 private:
  std::optional<Result> blocking_next(std::optional<std::chrono::milliseconds> timeout) {
    if (!state_) detail::throw_empty_pool();
    while (buffered_.empty()) {
      feed();
      std::exception_ptr error;
      std::string bytes;
      bool end = false;
      if (!detail::stream_next(*state_, timeout, error, bytes, end))
        throw boost::system::system_error(errc::timed_out, "herd: imap_stream::next: no result yet");
      if (error) std::rethrow_exception(error);
      if (end) return std::nullopt;
      unpack(bytes);
    }
    return take_front();
  }

  // Sends chunks of input while the window has room.
  void feed() {
    using item_type = std::decay_t<decltype(*next_)>;
    while (!input_done_ && detail::stream_has_room(*state_)) {
      std::string chunk;
      std::size_t count = 0;
      {
        encoder e(chunk);
        e.size(0);  // the count, written below
        for (; count < chunksize_ && next_ != std::end(range()); ++next_, ++count)
          e.value(static_cast<const detail::travel_t<item_type>&>(detail::travel_t<item_type>(*next_)));
      }
      const std::uint64_t n = count;
      std::memcpy(chunk.data(), &n, sizeof n);
      if (count != 0) detail::stream_feed(state_, std::move(chunk));
      if (!(next_ != std::end(range()))) {
        input_done_ = true;
        detail::stream_input_done(*state_);
      }
    }
  }

  void unpack(std::string_view bytes) {
    decoder d(bytes);
    while (d.remaining() != 0) buffered_.push_back(d.value<Result>());
    front_ = 0;
  }

  Result take_front() {
    Result value = std::move(buffered_[front_++]);
    if (front_ == buffered_.size()) {
      buffered_.clear();
      front_ = 0;
    }
    return value;
  }

  using range_type = std::remove_pointer_t<Input>;
  range_type& range() const noexcept { return *input_; }  // a pointer or a unique_ptr

  std::shared_ptr<detail::stream_state> state_;
  std::conditional_t<std::is_pointer_v<Input>, Input, std::unique_ptr<Input>> input_{};
  decltype(std::begin(std::declval<range_type&>())) next_{};
  bool input_done_ = false;
  std::size_t chunksize_;
  std::vector<Result> buffered_;
  std::size_t front_ = 0;
};

/// A pool of worker processes.
///
/// @par Thread safety
///   Distinct objects: safe. Shared objects: safe (any thread of a multi-threaded io_context may
///   submit, await and close).
class pool {
 public:
  using executor_type = asio::any_io_executor;

  /// Starts `options.processes` workers now, on `ex`'s event loop (forks happen on the calling
  /// thread now, and on the loop's threads for replacements).
  explicit pool(const executor_type& ex, const pool_options& options = {});
  /// A pool with its own event loop on an internal thread, for a plain `main`:
  /// `herd::pool p({.processes = 4}); auto v = p.map(f, xs);`
  explicit pool(const pool_options& options = {});
  pool(pool&& other) noexcept;
  pool& operator=(pool&& other) noexcept;
  /// Terminates: stops every worker by the stop policy (in the background on an executor's
  /// loop; before returning for a pool with its own loop); tasks not finished fail.
  ~pool();

  executor_type get_executor() const;
  bool valid() const noexcept { return core_ != nullptr; }
  /// The number of workers it keeps.
  std::size_t size() const;

  /// Runs `f(args...)` in a worker and yields its result; throws `herd::child_error` if the task
  /// threw (type, what(), the worker's pid), `herd::task_error` if the pool failed it (worker died,
  /// timed out, quarantined, pool terminated), `operation_aborted` if cancelled.
  /// @par Cancellation terminal, partial, total: a queued task is removed; a running one has
  ///   its worker stopped (stop policy) and replaced.
  template <typename F, typename... Args>
  auto async_apply(F&& f, Args&&... args)
      -> asio::awaitable<detail::pool_result_t<std::decay_t<F>, detail::travel_t<Args>...>> {
    task_request r = request_task(f, args...);
    return await_apply<detail::pool_result_t<std::decay_t<F>, detail::travel_t<Args>...>>(std::move(r.core), r.call,
                                                                                         std::move(r.args));
  }

  /// Blocking apply (Python's `apply`): not on the thread of the pool's event loop.
  template <typename F, typename... Args>
  auto apply(F&& f, Args&&... args) {
    return submit(std::forward<F>(f), std::forward<Args>(args)...).get();
  }

  /// Queues `f(args...)` and returns its handle at once (Python's `apply_async`,
  /// ProcessPoolExecutor's `submit`).
  template <typename F, typename... Args>
  auto submit(F&& f, Args&&... args) {
    task_request r = request_task(f, args...);
    return pool_task<detail::pool_result_t<std::decay_t<F>, detail::travel_t<Args>...>>(
        detail::pool_submit(r.core, r.call, std::move(r.args)));
  }

  /// `f` over every item of `input`, results in input order (Python's `map`). The first failure
  /// is thrown; the chunks not yet started are dropped, those running finish.
  /// @par Cancellation terminal, partial, total: as async_apply, for every chunk.
  template <typename F, typename Range>
  auto async_map(F&& f, const Range& input, map_options options = {}) {
    return map_chunks<std::decay_t<F>, item_of<Range>>(f, input, options.chunksize, encode_item<item_of<Range>>);
  }
  /// Blocking map.
  template <typename F, typename Range>
  auto map(F&& f, const Range& input, map_options options = {}) {
    return map_blocking<std::decay_t<F>, item_of<Range>>(f, input, options.chunksize, encode_item<item_of<Range>>);
  }

  /// `f(a, b, …)` for every tuple `(a, b, …)` of `input` (Python's `starmap`).
  template <typename F, typename Range>
  auto async_starmap(F&& f, const Range& input, map_options options = {}) {
    using tuple_type = std::decay_t<decltype(*std::begin(input))>;
    return star<tuple_type>::template async_map<std::decay_t<F>>(*this, f, input, options.chunksize);
  }
  template <typename F, typename Range>
  auto starmap(F&& f, const Range& input, map_options options = {}) {
    using tuple_type = std::decay_t<decltype(*std::begin(input))>;
    return star<tuple_type>::template map<std::decay_t<F>>(*this, f, input, options.chunksize);
  }

  /// Results of `f` over `input` one by one, in input order, pulling the input lazily (Python's
  /// `imap`): `while (auto r = co_await s.async_next()) …`. An lvalue range is read where it is
  /// (keep it alive while the stream reads it); a temporary is moved into the stream. An endless
  /// range works in bounded memory. Destroying the stream drops the chunks not yet started.
  template <typename F, typename Range>
  auto imap(F&& f, Range&& input, imap_options options = {}) {
    return make_stream<std::decay_t<F>>(f, std::forward<Range>(input), options, true);
  }
  /// The same, results as they come (Python's `imap_unordered`).
  template <typename F, typename Range>
  auto imap_unordered(F&& f, Range&& input, imap_options options = {}) {
    return make_stream<std::decay_t<F>>(f, std::forward<Range>(input), options, false);
  }

  /// No more tasks: queued ones still run, then the workers leave (Python's `close`).
  void close();
  /// Stops every worker now (stop policy): queued tasks fail `closed`, running ones
  /// `operation_aborted` (Python's `terminate`).
  void terminate();
  /// Waits until the pool is closed (or terminated) and every worker has ended (Python's `join`);
  /// `errc::invalid_argument` before close() or terminate(), as Python raises.
  /// @par Completion signature `void(error_code)`.
  /// @par Cancellation terminal, partial, total: stops waiting (`operation_aborted`); the pool
  ///   goes on closing, and a later join still works.
  template <asio::completion_token_for<void(error_code)> Token = default_token>
  auto async_join(Token&& token = {}) {
    return asio::async_initiate<Token, void(error_code)>(
        [core = core_, ex = executor_](auto handler) { detail::pool_async_join(core, ex, std::move(handler)); },
        token);
  }
  /// Blocking join (not on the thread of the pool's event loop).
  void join();

  pool_stats stats() const;

 private:
  // One item of a map's input, as it travels.
  template <typename Range>
  using item_of = detail::travel_t<decltype(*std::begin(std::declval<const Range&>()))>;
  template <typename Item>
  static constexpr auto encode_item = [](encoder& e, const auto& x) { e.value(static_cast<const Item&>(Item(x))); };

  template <typename Tuple>
  struct star;
  template <typename... T>
  struct star<std::tuple<T...>> {
    // A tuple of a starmap's input: its elements one after the other, as arguments travel.
    static constexpr auto encode_tuple = [](encoder& e, const auto& t) {
      std::apply([&](const auto&... x) { (encode_item<detail::travel_t<T>>(e, x), ...); }, t);
    };
    template <typename F, typename Range>
    static auto async_map(pool& self, const F& f, const Range& input, std::size_t chunksize) {
      return self.map_chunks<F, detail::travel_t<T>...>(f, input, chunksize, encode_tuple);
    }
    template <typename F, typename Range>
    static auto map(pool& self, const F& f, const Range& input, std::size_t chunksize) {
      return self.map_blocking<F, detail::travel_t<T>...>(f, input, chunksize, encode_tuple);
    }
  };

  std::shared_ptr<detail::pool_core> checked() const {
    if (!core_) detail::throw_empty_pool();
    return core_;
  }

  template <typename Result>
  static asio::awaitable<Result> await_apply(std::shared_ptr<detail::pool_core> core, detail::task_call call,
                                             std::string encoded) {
    auto [error, bytes] = co_await detail::initiate_as_tuple<void(std::exception_ptr, std::string)>(
        [](auto handler, std::shared_ptr<detail::pool_core> c, detail::task_call k, std::string a) {
          detail::pool_async_apply(c, k, std::move(a), std::move(handler));
        },
        std::move(core), call, std::move(encoded));
    if (error) std::rethrow_exception(error);
    co_return detail::decode_result<Result>(bytes);
  }

  // The chunks of a map's input: a count, then each item's encoding.
  template <typename Range, typename Encode>
  std::vector<std::string> chunks_of(const Range& input, std::size_t chunksize, Encode encode) const {
    std::size_t total = 0;
    for (auto it = std::begin(input); it != std::end(input); ++it) ++total;
    if (chunksize == 0) {
      const std::size_t parts = 4 * size();
      chunksize = total / parts + (total % parts != 0 ? 1 : 0);
      if (chunksize == 0) chunksize = 1;
    }
    std::vector<std::string> chunks;
    chunks.reserve(total / chunksize + 1);
    auto it = std::begin(input);
    for (std::size_t done = 0; done < total;) {
      std::string& chunk = chunks.emplace_back();
      const std::size_t count = std::min(chunksize, total - done);
      encoder e(chunk);
      e.size(count);
      for (std::size_t i = 0; i < count; ++i, ++it) encode(e, *it);
      done += count;
    }
    return chunks;
  }

  template <typename Result>
  static std::vector<Result> unpack_all(const std::vector<std::string>& parts) {
    std::vector<Result> all;
    for (const std::string& part : parts) {
      decoder d(part);
      while (d.remaining() != 0) all.push_back(d.value<Result>());
    }
    return all;
  }

  // What one task sends: the pool, the trampoline for f(args...), the encoded arguments.
  struct task_request {
    std::shared_ptr<detail::pool_core> core;
    detail::task_call call;
    std::string args;
  };
  template <typename F, typename... Args>
  task_request request_task(const F& f, const Args&... args) const {
    using fn = std::decay_t<F>;
    static_assert(detail::check_task<fn, detail::travel_t<Args>...>());
    task_request r{checked(), detail::call_of<fn>(f, detail::task_entry_for<fn, detail::travel_t<Args>...>()), {}};
    detail::encode_arguments(r.args, args...);
    return r;
  }

  // What a map sends: the pool, the chunk trampoline, the encoded chunks.
  struct map_request {
    std::shared_ptr<detail::pool_core> core;
    detail::task_call call;
    std::vector<std::string> chunks;
  };
  template <typename F, typename... Item, typename Range, typename Encode>
  map_request request_map(const F& f, const Range& input, std::size_t chunksize, Encode encode) const {
    static_assert(detail::check_task<F, Item...>());
    static_assert(!std::is_void_v<detail::pool_result_t<F, Item...>>,
                  "herd::pool::map: the function returns nothing; use submit() for each");
    return {checked(), detail::call_of<F>(f, &detail::invoke_chunk<F, Item...>), chunks_of(input, chunksize, encode)};
  }

  template <typename F, typename... Item, typename Range, typename Encode>
  auto map_chunks(const F& f, const Range& input, std::size_t chunksize, Encode encode) {
    map_request r = request_map<F, Item...>(f, input, chunksize, encode);
    return await_map<detail::pool_result_t<F, Item...>>(std::move(r.core), r.call, std::move(r.chunks));
  }

  template <typename Result>
  static asio::awaitable<std::vector<Result>> await_map(std::shared_ptr<detail::pool_core> core, detail::task_call call,
                                                        std::vector<std::string> chunks) {
    auto [error, parts] = co_await detail::initiate_as_tuple<void(std::exception_ptr, std::vector<std::string>)>(
        [](auto handler, std::shared_ptr<detail::pool_core> c, detail::task_call k, std::vector<std::string> a) {
          detail::pool_async_batch(c, k, std::move(a), std::move(handler));
        },
        std::move(core), call, std::move(chunks));
    if (error) std::rethrow_exception(error);
    co_return unpack_all<Result>(parts);
  }

  template <typename F, typename... Item, typename Range, typename Encode>
  auto map_blocking(const F& f, const Range& input, std::size_t chunksize, Encode encode) {
    detail::check_blocking_allowed(*checked(), "map");
    map_request r = request_map<F, Item...>(f, input, chunksize, encode);
    std::vector<std::string> parts;
    if (std::exception_ptr error = detail::pool_batch(r.core, r.call, std::move(r.chunks), parts))
      std::rethrow_exception(error);
    return unpack_all<detail::pool_result_t<F, Item...>>(parts);
  }

  template <typename F, typename Range>
  auto make_stream(const F& f, Range&& input, imap_options options, bool ordered) {
    // A range given by lvalue is read where it is (the caller keeps it alive, as Python's imap
    // keeps a reference); a temporary is moved into the stream.
    using input_type = std::conditional_t<std::is_lvalue_reference_v<Range>, std::remove_reference_t<Range>*,
                                          std::decay_t<Range>>;
    using item = detail::travel_t<decltype(*std::begin(input))>;
    static_assert(detail::check_task<F, item>());
    using result = detail::pool_result_t<F, item>;
    static_assert(!std::is_void_v<result>, "herd::pool::imap: the function returns nothing; use submit() for each");
    auto core = checked();
    const detail::task_call call = detail::call_of<F>(f, &detail::invoke_chunk<F, item>);
    const std::size_t chunksize = options.chunksize == 0 ? 1 : options.chunksize;
    auto state = detail::pool_stream(core, call, ordered, options.window);
    if constexpr (std::is_pointer_v<input_type>)
      return imap_stream<result, input_type>(std::move(state), &input, chunksize);
    else
      return imap_stream<result, input_type>(std::move(state), std::move(input), chunksize);
  }

  void shut_down() noexcept;

  std::unique_ptr<detail::owned_loop> loop_;  // a pool's own event loop, if it has one
  friend struct detail::pool_access;
  std::shared_ptr<detail::pool_core> core_;
  executor_type executor_;
};

}  // namespace herd
