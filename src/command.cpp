#include <herd/command.hpp>

namespace herd {

command::command(std::string program) : program_(std::move(program)) {}

command::command(std::string program, std::vector<std::string> arguments)
    : program_(std::move(program)), arguments_(std::move(arguments)) {}
command::command(const command&) = default;
command::command(command&&) noexcept = default;
command& command::operator=(const command&) = default;
command& command::operator=(command&&) noexcept = default;
command::~command() = default;

command& command::arg(std::string argument) & {
  arguments_.push_back(std::move(argument));
  return *this;
}

command& command::args(std::vector<std::string> arguments) & {
  arguments_.insert(arguments_.end(), std::make_move_iterator(arguments.begin()),
                    std::make_move_iterator(arguments.end()));
  return *this;
}

command& command::env(std::string name, std::string value) & {
  env_changes_.emplace_back(std::move(name), std::move(value));
  return *this;
}

command& command::env_remove(std::string name) & {
  env_changes_.emplace_back(std::move(name), std::nullopt);
  return *this;
}

command& command::env_clear() & {
  inherit_env_ = false;
  env_changes_.clear();
  return *this;
}

command& command::current_dir(std::string directory) & {
  cwd_ = std::move(directory);
  return *this;
}

command& command::std_in(stdio s) & {
  stdin_ = std::move(s);
  return *this;
}

command& command::std_out(stdio s) & {
  stdout_ = std::move(s);
  return *this;
}

command& command::std_err(stdio s) & {
  stderr_ = std::move(s);
  return *this;
}

command& command::stop(stop_policy policy) & {
  stop_ = policy;
  return *this;
}

command& command::die_with_parent(bool enable) & {
  die_with_parent_ = enable;
  return *this;
}

command& command::keep_descendants(bool enable) & {
  keep_descendants_ = enable;
  return *this;
}

namespace {

void append_quoted(std::string& out, const std::string& word) {
  const bool plain = !word.empty() && word.find_first_not_of(
                                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                          "-_./=:,+@%") == std::string::npos;
  if (plain) {
    out += word;
    return;
  }
  out += '\'';
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else if (c == '\0')
      out += "\\0";  // shown, never a C string's end in a message
    else
      out += c;
  }
  out += '\'';
}

}  // namespace

std::string command::to_string() const {
  std::string text;
  append_quoted(text, program_);
  for (const auto& argument : arguments_) {
    text += ' ';
    append_quoted(text, argument);
  }
  return text;
}

std::vector<command> operator|(command first, command second) {
  std::vector<command> stages;
  stages.reserve(4);
  stages.push_back(std::move(first));
  stages.push_back(std::move(second));
  return stages;
}

std::vector<command> operator|(std::vector<command> stages, command next) {
  stages.push_back(std::move(next));
  return stages;
}

}  // namespace herd
