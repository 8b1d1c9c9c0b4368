// async_run_all: a list of programs, at most N at once (xargs -P), outcomes in input order.
#include <herd/process.hpp>
#include <herd/run.hpp>

#include "detail/await_all.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>

#include <memory>

namespace herd {
namespace {

struct run_all_state {
  std::vector<command> commands;
  run_options each;
  std::vector<run_all_item> items;
  std::size_t next = 0;
  run_all_state(std::vector<command> c, run_options o) : commands(std::move(c)), each(o), items(commands.size()) {}
};

// Takes the next command until none is left (a cancelled run stops at its next co_await).
asio::awaitable<void> runner(std::shared_ptr<run_all_state> state, asio::any_io_executor ex) {
  while (state->next < state->commands.size()) {
    const std::size_t i = state->next++;
    auto [ec, result] = co_await async_run(ex, state->commands[i], state->each, asio::as_tuple(asio::deferred));
    state->items[i] = run_all_item{ec, std::move(result)};
  }
}

}  // namespace

asio::awaitable<std::vector<run_all_item>> async_run_all(const asio::any_io_executor& ex, std::vector<command> commands,
                                                         run_all_options options) {
  auto state = std::make_shared<run_all_state>(std::move(commands), options.each);
  const std::size_t width = std::min(state->commands.size(), options.concurrency != 0 ? options.concurrency : cpu_count());
  std::vector<asio::awaitable<void>> runners;
  for (std::size_t r = 0; r < width; ++r) runners.push_back(runner(state, ex));
  try {
    co_await detail::await_all(ex, std::move(runners));
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted)
      throw boost::system::system_error(asio::error::operation_aborted, "herd::async_run_all: cancelled");
    throw;
  }
  co_return std::move(state->items);
}

}  // namespace herd
