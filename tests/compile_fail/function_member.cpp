// Must not compile: a struct with a std::function field (code and captures of this process).
// The error names the reason (tests/CMakeLists.txt).
#include <herd/codec.hpp>

#include <functional>

struct task {
  int id;
  std::function<int(int)> work;
};

int main() {
  (void)herd::encode(task{1, [](int x) { return x + 1; }});
}
