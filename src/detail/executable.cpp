#include "executable.hpp"

#include "process_v2.hpp"

#include <unistd.h>

namespace herd::detail {

std::filesystem::path find_executable(const std::string& program, const std::string& search_path,
                                      const std::filesystem::path& working_directory) {
  if (program.empty()) return {};
  if (program.find('/') != std::string::npos) {
    std::filesystem::path path(program);
    std::filesystem::path checked = path.is_relative() && !working_directory.empty() ? working_directory / path : path;
    std::error_code ec;
    if (std::filesystem::is_regular_file(checked, ec) && ::access(checked.c_str(), X_OK) == 0) return path;
    return {};
  }
  std::vector<process_v2::environment::key_value_pair> environment;
  environment.emplace_back(std::string("PATH=") + search_path);
  auto found = process_v2::environment::find_executable(program, environment);
  return std::filesystem::path(found.native());
}

}  // namespace herd::detail
