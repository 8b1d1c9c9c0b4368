// Must not compile: a struct with a pointer field is not sent as its bytes (the address would
// mean nothing in the receiving process). The error names the reason (tests/CMakeLists.txt).
#include <herd/codec.hpp>

struct message {
  int id;
  const char* name;
};

int main() {
  (void)herd::encode(message{1, "one"});
}
