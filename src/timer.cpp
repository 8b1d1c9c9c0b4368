#include <herd/detail/timer.hpp>
#include <herd/with_timeout.hpp>

#include <boost/asio/steady_timer.hpp>

#include <string>
#include <utility>

namespace herd::detail {

struct timer::impl {
  explicit impl(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
};

timer::timer(const asio::any_io_executor& ex) : impl_(new impl(ex)) {}
timer::timer(timer&& other) noexcept : impl_(std::exchange(other.impl_, nullptr)) {}
timer& timer::operator=(timer&& other) noexcept {
  if (this != &other) {
    delete impl_;
    impl_ = std::exchange(other.impl_, nullptr);
  }
  return *this;
}
timer::~timer() { delete impl_; }

void timer::async_wait(std::chrono::steady_clock::duration duration,
                       asio::any_completion_handler<void(error_code)> handler) {
  impl_->timer.expires_after(duration);
  impl_->timer.async_wait(std::move(handler));
}

void timer::cancel() noexcept {
  if (impl_) impl_->timer.cancel();
}

void throw_timed_out(std::chrono::steady_clock::duration timeout, const std::exception& cause) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  throw boost::system::system_error(make_error_code(errc::timed_out), "herd::with_timeout: no result within " +
                                                                          std::to_string(ms) + " ms (" + cause.what() +
                                                                          ")");
}

}  // namespace herd::detail
