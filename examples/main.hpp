// The examples' shared main: herd::init first (a process herd spawned takes its role there; pools
// then start their workers through the forkserver), then `co_main(executor, argc, argv)` on one
// io_context, rethrowing what it threw (Boost.Redis's examples share a main the same way).
#pragma once

#include <herd/start_method.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>

boost::asio::awaitable<void> co_main(boost::asio::any_io_executor ex, int argc, char** argv);

int main(int argc, char** argv) {
  herd::init(argc, argv);
  boost::asio::io_context io;
  boost::asio::co_spawn(io, co_main(io.get_executor(), argc, argv), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}
