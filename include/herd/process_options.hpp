/// @file herd/process_options.hpp
/// `herd::process_options`: how `herd::start` starts a function child — its name, whether it is a
/// daemon, its stop policy, standard streams and environment. Light on purpose: code that only
/// builds options need not include the start machinery.
#pragma once

#include <herd/start_method.hpp>
#include <herd/stdio.hpp>
#include <herd/stop_policy.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace herd {

/// How to start a function child (Python's `Process(name=…, daemon=…)` and more).
struct process_options {
  /// For messages and `this_process::name()` in the child; default "process-N".
  std::string name{};
  /// A daemon is stopped (stop policy) when the parent exits normally, may not start children
  /// of its own, and dies with the parent like every child.
  bool daemon = false;
  /// How herd stops it: terminate(), async_stop(), destruction of a running handle, scopes.
  stop_policy stop{};
  /// The child's standard streams: inherited when unset (so its output shows up like
  /// Python's); `stdio::null()`, `file()` and `fd()` also work.
  stdio std_in{}, std_out{}, std_err{};
  /// Environment variables the child sets before it runs the function.
  std::vector<std::pair<std::string, std::string>> env{};
  /// SIGKILL the child if the parent dies (PR_SET_PDEATHSIG). Default: true.
  bool die_with_parent = true;
  /// How the child is started (nothing: what `herd::set_start_method` chose, else fork). With
  /// fork the function, its captures and arguments are the child's copy of the parent's memory;
  /// with spawn or forkserver (main must begin with `herd::init`) they travel encoded, so the
  /// function must be a function, a captureless lambda, an empty callable or a plain struct of
  /// encodable fields, and every argument encodable — else `start` throws `invalid_argument`
  /// saying why. Their start costs the parent the same whatever its size.
  std::optional<herd::start_method> start_method{};
};

}  // namespace herd
