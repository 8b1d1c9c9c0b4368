// Must not compile: a raw pointer cannot cross a process boundary. The build of this file is a
// test that expects failure, with herd's own message (tests/CMakeLists.txt).
#include <herd/codec.hpp>

int main() {
  int value = 0;
  (void)herd::encode(&value);
}
