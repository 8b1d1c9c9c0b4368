// herd's test runner: doctest with its own main, so later start methods can hook in first.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <herd/run.hpp>

#include <boost/asio/io_context.hpp>

int main(int argc, char** argv) {
  {
    // The first start of a process makes its group watchdog's pipe, one descriptor for the
    // process's life: made here, before any test counts descriptors.
    boost::asio::io_context io;
    herd::async_run(io.get_executor(), herd::command("true"), [](boost::system::error_code, herd::run_result) {});
    io.run();
  }
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
