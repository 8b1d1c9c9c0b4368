#include "await_all.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>

#include <exception>
#include <memory>

namespace herd::detail {
namespace {

struct together {
  std::size_t running = 0;
  std::exception_ptr first_failure;
  std::vector<std::unique_ptr<asio::cancellation_signal>> cancels;
  asio::steady_timer ended;
  explicit together(const asio::any_io_executor& ex) : ended(ex, std::chrono::steady_clock::time_point::max()) {}

  void cancel_all() {
    for (auto& cancel : cancels) cancel->emit(asio::cancellation_type::terminal);
  }
};

}  // namespace

asio::awaitable<void> await_all(asio::any_io_executor ex, std::vector<asio::awaitable<void>> work) {
  auto state = std::make_shared<together>(ex);
  state->running = work.size();
  for (std::size_t k = 0; k < work.size(); ++k) state->cancels.push_back(std::make_unique<asio::cancellation_signal>());
  for (std::size_t k = 0; k < work.size(); ++k)
    asio::co_spawn(ex, std::move(work[k]),
                   asio::bind_cancellation_slot(state->cancels[k]->slot(), [state, k](std::exception_ptr failure) {
                     // A coroutine that has ended is not cancelled again.
                     state->cancels[k]->slot().clear();
                     if (failure && !state->first_failure) {
                       state->first_failure = failure;
                       state->cancel_all();
                     }
                     if (--state->running == 0) state->ended.cancel();
                   }));
  bool cancelled = false;
  while (state->running > 0) {
    co_await state->ended.async_wait(asio::as_tuple(asio::deferred));
    if (state->running > 0 && (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
      cancelled = true;
      state->cancel_all();
      co_await asio::this_coro::reset_cancellation_state();
    }
  }
  if (state->first_failure) std::rethrow_exception(state->first_failure);
  if (cancelled) throw boost::system::system_error(asio::error::operation_aborted, "herd: cancelled");
}

}  // namespace herd::detail
