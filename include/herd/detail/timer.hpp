// A one-shot steady timer whose Asio machinery stays in src/ (keeps public headers light).
#pragma once

#include <herd/config.hpp>
#include <herd/detail/chrono.hpp>

#include <boost/asio/any_completion_handler.hpp>

namespace herd::detail {

class timer {
 public:
  explicit timer(const asio::any_io_executor& ex);
  timer(timer&&) noexcept;
  timer& operator=(timer&&) noexcept;
  ~timer();

  /// Completes with success after `duration`, or operation_aborted after cancel().
  void async_wait(std::chrono::steady_clock::duration duration,
                  asio::any_completion_handler<void(error_code)> handler);
  void cancel() noexcept;

 private:
  struct impl;
  impl* impl_;  // owned; not a unique_ptr, which every includer would instantiate
};

}  // namespace herd::detail
