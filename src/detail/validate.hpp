// What execve cannot take as given: checks of names and strings before a child is started.
#pragma once

#include <string>

namespace herd::detail {

/// Empty, or what is wrong with an environment variable's name: empty, or holding '=' or a NUL
/// byte (execve would read "A=B=x" as A set to "B=x", and a NUL ends the string early).
std::string bad_environment_name(const std::string& name);
/// Empty, or what is wrong with `text` (an argument, a value) that execve takes as a C string:
/// a NUL byte, which would cut it short. `what` names it ("argument 2").
std::string bad_c_string(const std::string& text, const std::string& what);
/// Empty, or what is wrong with setting the environment variable `name` to `value`.
std::string bad_environment_entry(const std::string& name, const std::string& value);

}  // namespace herd::detail
