// herd's test runner: doctest with its own main, so later start methods can hook in first.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <herd/run.hpp>
#include <herd/start_method.hpp>

#include "detail/spawn_process.hpp"

#include <boost/asio/io_context.hpp>

#include <string>
#include <string_view>

#include <cstdlib>
#include <unistd.h>

// tests/code_ref.cpp: this binary, run again, resolves code another copy of it sent.
int run_code_ref_probe(const char* encoded);

int main(int argc, char** argv) {
  herd::init(argc, argv);  // a pool worker this binary spawned takes its role here
  // Pages the tests share with their workers are named after this process (tests/pool.cpp).
  ::setenv("HERD_TEST_OWNER", std::to_string(::getpid()).c_str(), 1);
  if (argc == 3 && std::string_view(argv[1]) == "--herd-code-ref-probe") return run_code_ref_probe(argv[2]);
  {
    // The first start of a process makes its group watchdog's pipe, one descriptor for the
    // process's life: made here, before any test counts descriptors.
    boost::asio::io_context io;
    herd::async_run(io.get_executor(), herd::command("true"), [](boost::system::error_code, herd::run_result) {});
    io.run();
  }
  // The forkserver's socket lives as long as this process: made before tests count descriptors
  // (pools use it by default, main having called herd::init).
  herd::detail::forkserver_ready();
  // The function-child and pool suites run again under spawn and forkserver (tests/CMakeLists.txt).
  const char* method = std::getenv("HERD_TEST_START_METHOD");
  const std::string_view method_name = method != nullptr ? method : "";
  if (method_name == "forkserver") herd::set_start_method(herd::start_method::forkserver);
  if (method_name == "spawn") herd::set_start_method(herd::start_method::spawn);
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
