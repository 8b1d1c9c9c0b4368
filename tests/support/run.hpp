// Drives one test coroutine on a fresh io_context, with a watchdog.
#pragma once

#include <herd/config.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <utility>

namespace herd_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// Runs `body(executor)` (returning asio::awaitable<void>) to completion and rethrows what it
/// threw. Fails the test if it has not finished after `watchdog`.
template <typename Body>
void run(Body&& body, std::chrono::steady_clock::duration watchdog = 60s) {
  asio::io_context io;
  std::exception_ptr failure;
  bool finished = false;
  asio::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) {
    failure = e;
    finished = true;
  });
  io.run_for(watchdog);
  REQUIRE_MESSAGE(finished, "the test coroutine did not finish within the watchdog");
  if (failure) std::rethrow_exception(failure);
}

}  // namespace herd_test
