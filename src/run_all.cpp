// async_run_all: a list of programs, at most N at once (xargs -P), outcomes in input order.
#include <herd/process.hpp>
#include <herd/run.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <memory>

namespace herd {
namespace {

struct run_all_state {
  std::vector<command> commands;
  run_options each;
  std::vector<run_all_item> items;
  std::size_t next = 0;
  std::size_t running = 0;
  bool stopping = false;
  std::vector<std::unique_ptr<asio::cancellation_signal>> cancels;
  asio::steady_timer done;
  run_all_state(const asio::any_io_executor& ex, std::vector<command> c, run_options o)
      : commands(std::move(c)), each(o), items(commands.size()), done(ex, std::chrono::steady_clock::time_point::max()) {}
};

// Takes the next command until none is left (or the run is cancelled).
asio::awaitable<void> runner(std::shared_ptr<run_all_state> state, asio::any_io_executor ex) {
  while (!state->stopping && state->next < state->commands.size()) {
    const std::size_t i = state->next++;
    auto [ec, result] = co_await async_run(ex, state->commands[i], state->each, asio::as_tuple(asio::deferred));
    state->items[i] = run_all_item{ec, std::move(result)};
  }
}

}  // namespace

asio::awaitable<std::vector<run_all_item>> async_run_all(const asio::any_io_executor& ex, std::vector<command> commands,
                                                         run_all_options options) {
  auto state = std::make_shared<run_all_state>(ex, std::move(commands), options.each);
  const std::size_t width = std::min(state->commands.size(), options.concurrency != 0 ? options.concurrency : cpu_count());
  for (std::size_t r = 0; r < width; ++r) {
    state->cancels.push_back(std::make_unique<asio::cancellation_signal>());
    ++state->running;
    asio::co_spawn(ex, runner(state, ex),
                   asio::bind_cancellation_slot(state->cancels.back()->slot(), [state](std::exception_ptr) {
                     if (--state->running == 0) state->done.cancel();
                   }));
  }
  bool cancelled = false;
  while (state->running > 0) {
    co_await state->done.async_wait(asio::as_tuple(asio::deferred));
    if (state->running > 0 &&
        (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
      // Cancelled: the running programs are stopped (their async_run is cancelled), no more start.
      cancelled = true;
      state->stopping = true;
      for (auto& cancel : state->cancels) cancel->emit(asio::cancellation_type::terminal);
      co_await asio::this_coro::reset_cancellation_state();
    }
  }
  if (cancelled) throw boost::system::system_error(asio::error::operation_aborted, "herd::async_run_all: cancelled");
  co_return std::move(state->items);
}

}  // namespace herd
