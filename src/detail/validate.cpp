#include "validate.hpp"

namespace herd::detail {

namespace {
std::string shown(const std::string& text) {
  std::string out = "\"";
  for (char c : text) out += c == '\0' ? std::string("\\0") : std::string(1, c);
  return out + "\"";
}
}  // namespace

std::string bad_environment_name(const std::string& name) {
  if (name.empty()) return "an environment variable's name is empty";
  if (name.find('=') != std::string::npos) return "the environment variable name " + shown(name) + " contains '='";
  if (name.find('\0') != std::string::npos)
    return "the environment variable name " + shown(name) + " contains a NUL byte";
  return {};
}

std::string bad_c_string(const std::string& text, const std::string& what) {
  if (text.find('\0') == std::string::npos) return {};
  return what + " " + shown(text) + " contains a NUL byte";
}

std::string bad_environment_entry(const std::string& name, const std::string& value) {
  std::string problem = bad_environment_name(name);
  return problem.empty() ? bad_c_string(value, "the value of " + name) : problem;
}

}  // namespace herd::detail
