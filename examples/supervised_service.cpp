// The daemon heartbeat of examples/process_daemon.cpp, supervised: a service host that says it
// is alive every beat is SIGKILLed and comes back with a new pid; a child that stops its
// heartbeats is stopped and restarted; a child that always crashes exhausts the restart
// intensity and the supervisor says which child and why.
//   supervised_service [beat-ms]     (default: every second)
#include <herd/herd.hpp>

#include "main.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

namespace asio = boost::asio;

// [snippet:host]
// The service host: alive while it says so.
[[noreturn]] void service_host(int beat_ms) {
  for (int beat = 1;; ++beat) {
    std::cout << "service host " << beat << " ok" << std::endl;
    herd::this_process::heartbeat();
    ::usleep(static_cast<useconds_t>(beat_ms) * 1000);
  }
}
// [/snippet]

// Beats twice, then hangs (a deadlock, an endless loop): it stays alive but says nothing.
[[noreturn]] void stuck_after_two(int beat_ms) {
  for (int beat = 1; beat <= 2; ++beat) {
    herd::this_process::heartbeat();
    ::usleep(static_cast<useconds_t>(beat_ms) * 1000);
  }
  for (;;) ::pause();
}

[[noreturn]] void crash() {
  std::exit(1);
}

asio::awaitable<void> wait_ms(asio::any_io_executor ex, int ms) {
  asio::steady_timer t(ex, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::deferred);
}

// Prints the supervisor's events, as a log would.
void print_event(const herd::supervisor_event& e) {
  std::cout << "  [" << e.supervisor << "] " << herd::to_string(e) << std::endl;
}

asio::awaitable<void> co_main(asio::any_io_executor ex, int argc, char** argv) {
  const int beat = argc > 1 ? std::atoi(argv[1]) : 1000;
  const auto allowed = std::chrono::milliseconds(3 * beat);

  // [snippet:supervised]
  herd::supervisor service(ex, {herd::child_spec::function("host", service_host, beat).heartbeat(allowed)},
                           {.name = "service", .on_event = print_event});
  asio::co_spawn(ex, service.async_run(), asio::detached);
  co_await wait_ms(ex, beat * 3 + beat / 2);  // three beats
  const int before = service.which_children()[0].pid;
  std::cout << "killing host (pid " << before << ") with SIGKILL" << std::endl;
  ::kill(before, SIGKILL);
  while (service.which_children()[0].pid == 0 || service.which_children()[0].pid == before)
    co_await wait_ms(ex, 10);
  std::cout << "restarted with a new pid: " << (service.which_children()[0].pid != before ? "yes" : "no") << std::endl;
  co_await wait_ms(ex, beat + beat / 2);
  co_await service.async_stop();
  // [/snippet]

  herd::supervisor watchdog(ex, {herd::child_spec::function("stuck", stuck_after_two, beat).heartbeat(allowed)},
                            {.name = "watchdog", .on_event = print_event});
  asio::co_spawn(ex, watchdog.async_run(), asio::detached);
  while (watchdog.which_children()[0].restarts == 0) co_await wait_ms(ex, 10);
  std::cout << "stuck was restarted after missing its heartbeats" << std::endl;
  co_await watchdog.async_stop();

  herd::supervisor_options crashy{.name = "crashy", .intensity = {3, std::chrono::seconds(5)}, .on_event = print_event};
  crashy.backoff.initial = std::chrono::milliseconds(beat / 10);
  herd::supervisor hopeless(ex, {herd::child_spec::function("crasher", crash)}, crashy);
  try {
    co_await hopeless.async_run();
  } catch (const herd::supervisor_error& e) {
    std::cout << "gave up: " << e.what() << std::endl;
  }
}
