// Must not compile: a trivially copyable class with private members, not opted in with
// herd::raw_codec (herd cannot see whether it holds a pointer). The error says how to opt in
// (tests/CMakeLists.txt).
#include <herd/codec.hpp>

class handle {
 public:
  handle() = default;
  explicit handle(int* p) : p_(p) {}
  int* get() const { return p_; }

 private:
  int* p_ = nullptr;
};

int main() {
  int value = 0;
  (void)herd::encode(handle(&value));
}
