// herd::shutdown: signals on a strand, the registered stops run one after another by a
// coroutine, a deadline; the decisions are shutdown_steps' (src/detail/shutdown_steps.*).
#include <herd/pool.hpp>
#include <herd/shutdown.hpp>
#include <herd/supervisor.hpp>

#include "detail/shutdown_steps.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

namespace herd {
namespace detail {

struct shutdown_core : std::enable_shared_from_this<shutdown_core> {
  struct step {
    std::string name;
    std::function<asio::awaitable<void>()> run;
    std::function<void()> force;
  };

  shutdown_core(asio::io_context& context, shutdown_options o)
      : io(context), options(std::move(o)), strand(asio::make_strand(context)), signals(strand), deadline(strand) {
    for (int signo : options.signals) signals.add(signo);
  }

  asio::io_context& io;
  shutdown_options options;
  asio::strand<asio::io_context::executor_type> strand;
  asio::signal_set signals;
  asio::steady_timer deadline;
  shutdown_steps steps;
  std::vector<step> registered;
  asio::cancellation_signal drain_cancel;
  bool listening = true;

  void listen() {
    signals.async_wait([self = shared_from_this()](error_code ec, int signo) {
      if (ec || !self->listening) return;
      self->act(self->steps.on_signal(signo));
      if (self->listening) self->listen();
    });
  }

  void act(shutdown_steps::action a) {
    switch (a) {
      case shutdown_steps::action::start_draining: {
        deadline.expires_after(options.deadline);
        deadline.async_wait([self = shared_from_this()](error_code ec) {
          if (!ec) self->act(self->steps.on_deadline());
        });
        asio::co_spawn(strand, drain(),
                       asio::bind_cancellation_slot(drain_cancel.slot(), [self = shared_from_this()](std::exception_ptr) {
                         self->act(self->steps.on_drained());
                       }));
        break;
      }
      case shutdown_steps::action::force:
        for (auto it = registered.rbegin(); it != registered.rend(); ++it)
          if (it->force) it->force();
        drain_cancel.emit(asio::cancellation_type::terminal);
        end();
        break;
      case shutdown_steps::action::finish:
        end();
        break;
      case shutdown_steps::action::none:
        break;
    }
  }

  // The registered stops, the last registered first; one that throws does not keep the others
  // from running.
  asio::awaitable<void> drain() {
    for (std::size_t k = registered.size(); k-- > 0;) {
      try {
        co_await registered[k].run();
      } catch (...) {
        if (steps.current() != shutdown_steps::state::draining) co_return;  // forced meanwhile
      }
    }
  }

  void end() {
    listening = false;
    deadline.cancel();
    signals.cancel();
    asio::post(io, [&context = io] { context.stop(); });
  }
};

}  // namespace detail

shutdown::shutdown(asio::io_context& io, shutdown_options options)
    : core_(std::make_shared<detail::shutdown_core>(io, std::move(options))) {
  core_->listen();
}

shutdown::~shutdown() {
  if (!core_) return;
  core_->listening = false;
  error_code ignored;
  core_->signals.cancel(ignored);
}

void shutdown::on_stop(std::string name, std::function<asio::awaitable<void>()> step, std::function<void()> force) {
  core_->registered.push_back({std::move(name), std::move(step), std::move(force)});
}

void shutdown::add(pool& p) {
  on_stop(
      "pool",
      [&p]() -> asio::awaitable<void> {
        p.close();
        co_await p.async_join();
      },
      [&p] { p.terminate(); });
}

void shutdown::add(supervisor& s) {
  on_stop(
      s.name(), [&s]() -> asio::awaitable<void> { co_await s.async_stop(); }, [&s] { s.kill(); });
}

void shutdown::request_stop() {
  // Posted: a step that asks from within the drain must not be cancelled from inside itself.
  asio::post(core_->strand, [core = core_] { core->act(core->steps.on_signal(0)); });
}

bool shutdown::stopping() const noexcept { return core_->steps.current() != detail::shutdown_steps::state::running; }
bool shutdown::stopped() const noexcept {
  const auto s = core_->steps.current();
  return s == detail::shutdown_steps::state::done || s == detail::shutdown_steps::state::forced;
}
int shutdown::exit_code() const noexcept { return core_->steps.exit_code(); }
int shutdown::signal() const noexcept { return core_->steps.first_signal(); }

}  // namespace herd
