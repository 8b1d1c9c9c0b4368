// Must not compile: a struct with a std::string_view field (a view into this process's memory).
// The error names the reason (tests/CMakeLists.txt).
#include <herd/codec.hpp>

#include <string_view>

struct message {
  int id;
  std::string_view name;
};

int main() {
  (void)herd::encode(message{1, "one"});
}
