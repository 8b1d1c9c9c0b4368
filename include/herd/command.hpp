/// @file herd/command.hpp
/// `herd::command`: a program to run, with its arguments, environment, working directory,
/// standard streams and stop policy. Run it with `herd::async_run` or stream it with `herd::child`.
#pragma once

#include <herd/stdio.hpp>
#include <herd/stop_policy.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace herd {

/// A program and how to run it. A value type: build it once, run it many times.
///
/// @code
/// auto cmd = herd::command("grep", "-c", "error")
///                .std_in(herd::stdio::file("app.log"))
///                .env("LC_ALL", "C");
/// @endcode
class command {
 public:
  /// `program` is looked up in PATH (of the child's environment) unless it contains a '/'.
  explicit command(std::string program);
  /// `command("grep", "-c", "error")`. Prefer this form inside `co_await` expressions: g++ 12
  /// rejects braced lists there ("array used as initializer").
  template <typename... Arguments>
    requires(sizeof...(Arguments) > 0 && (std::is_convertible_v<Arguments, std::string> && ...))
  command(std::string program, Arguments&&... arguments)
      : command(std::move(program), std::vector<std::string>{std::string(std::forward<Arguments>(arguments))...}) {}
  command(std::string program, std::vector<std::string> arguments);
  // Compiled in src/, so that every includer does not instantiate the members' copies and
  // destructors (docs/design/decisions.md, "Light public headers").
  command(const command&);
  command(command&&) noexcept;
  command& operator=(const command&);
  command& operator=(command&&) noexcept;
  ~command();

  command& arg(std::string argument) &;
  command&& arg(std::string argument) && { return std::move(arg(std::move(argument))); }
  command& args(std::vector<std::string> arguments) &;
  command&& args(std::vector<std::string> arguments) && { return std::move(args(std::move(arguments))); }

  /// Sets (or overrides) one environment variable of the child.
  command& env(std::string name, std::string value) &;
  command&& env(std::string name, std::string value) && { return std::move(env(std::move(name), std::move(value))); }
  /// Removes one variable from the child's environment.
  command& env_remove(std::string name) &;
  command&& env_remove(std::string name) && { return std::move(env_remove(std::move(name))); }
  /// Starts the child's environment empty instead of inheriting the parent's; later env() calls add to it.
  command& env_clear() &;
  command&& env_clear() && { return std::move(env_clear()); }

  /// The child's working directory (a relative program path is resolved against it). A
  /// `std::filesystem::path` converts to it.
  command& current_dir(std::string directory) &;
  command&& current_dir(std::string directory) && { return std::move(current_dir(std::move(directory))); }

  command& std_in(stdio s) &;
  command&& std_in(stdio s) && { return std::move(std_in(std::move(s))); }
  command& std_out(stdio s) &;
  command&& std_out(stdio s) && { return std::move(std_out(std::move(s))); }
  command& std_err(stdio s) &;
  command&& std_err(stdio s) && { return std::move(std_err(std::move(s))); }

  /// How herd stops this program (terminate(), timeouts, cancellation, destructors).
  command& stop(stop_policy policy) &;
  command&& stop(stop_policy policy) && { return std::move(stop(policy)); }
  /// Whether the child gets SIGKILL when the parent dies (PR_SET_PDEATHSIG). Default: true.
  command& die_with_parent(bool enable) &;
  command&& die_with_parent(bool enable) && { return std::move(die_with_parent(enable)); }
  /// Whether processes the program left in its process group survive it. Default: false,
  /// so a program's leftover background jobs are killed once it has exited.
  command& keep_descendants(bool enable) &;
  command&& keep_descendants(bool enable) && { return std::move(keep_descendants(enable)); }

  const std::string& program() const noexcept { return program_; }
  const std::vector<std::string>& arguments() const noexcept { return arguments_; }
  bool inherits_environment() const noexcept { return inherit_env_; }
  /// The environment changes in order: a value sets the variable, nullopt removes it.
  const std::vector<std::pair<std::string, std::optional<std::string>>>& environment_changes() const noexcept {
    return env_changes_;
  }
  const std::optional<std::string>& working_directory() const noexcept { return cwd_; }
  const stdio& std_in() const noexcept { return stdin_; }
  const stdio& std_out() const noexcept { return stdout_; }
  const stdio& std_err() const noexcept { return stderr_; }
  const stop_policy& stop() const noexcept { return stop_; }
  bool die_with_parent() const noexcept { return die_with_parent_; }
  bool keep_descendants() const noexcept { return keep_descendants_; }

  /// The command as a shell would show it: `grep -c 'an error'`.
  std::string to_string() const;

 private:
  std::string program_;
  std::vector<std::string> arguments_;
  bool inherit_env_ = true;
  std::vector<std::pair<std::string, std::optional<std::string>>> env_changes_;
  std::optional<std::string> cwd_;
  stdio stdin_, stdout_, stderr_;
  stop_policy stop_;
  bool die_with_parent_ = true;
  bool keep_descendants_ = false;
};

/// `a | b`: the stages of a pipeline, for async_run_pipeline (no braced list needed).
std::vector<command> operator|(command first, command second);
/// `a | b | c`: appends a stage.
std::vector<command> operator|(std::vector<command> stages, command next);

}  // namespace herd
