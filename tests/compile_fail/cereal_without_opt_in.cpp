// Must not compile: a class cereal could serialize, sent without <herd/cereal.hpp> (cereal is
// opt-in). The error names the header to include (tests/CMakeLists.txt).
#include <herd/codec.hpp>

#include <cereal/types/string.hpp>

#include <string>

class note {
 public:
  note() = default;
  explicit note(std::string text) : text_(std::move(text)) {}
  template <typename Archive>
  void serialize(Archive& archive) {
    archive(text_);
  }

 private:
  std::string text_;
};

int main() { (void)herd::encode(note("hello")); }
