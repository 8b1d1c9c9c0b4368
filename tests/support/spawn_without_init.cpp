// A program that asks for spawned pool workers without calling herd::init: the pool refuses
// with a message that says what to do (tests/CMakeLists.txt checks it), instead of running the
// program's main again in every worker.
#include <herd/pool.hpp>

#include <iostream>

int main() {
  try {
    herd::pool pool({.processes = 1, .start_method = herd::start_method::spawn});
    std::cout << "started without herd::init\n";
    return 1;
  } catch (const boost::system::system_error& e) {
    std::cout << e.what() << "\n";
    return e.code() == herd::errc::invalid_argument ? 0 : 1;
  }
}
