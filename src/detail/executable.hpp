// Resolving a program name the way execvp would, but in the parent, before the launch.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace herd::detail {

/// The executable `program` names: searched in `search_path` (a PATH value) unless it contains
/// a '/', in which case it is taken relative to `working_directory` (if not empty). Empty if
/// there is no such executable file.
std::filesystem::path find_executable(const std::string& program, const std::string& search_path,
                                      const std::filesystem::path& working_directory);

}  // namespace herd::detail
