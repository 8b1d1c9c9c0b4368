/// @file herd/stop_policy.hpp
/// How herd stops a child: one policy for terminate(), timeouts, cancellation and destructors.
#pragma once

#include <herd/detail/chrono.hpp>

#include <csignal>

namespace herd {

/// Stopping a child follows these steps: close its stdin (if asked), send `signal` to its
/// whole process group, wait up to `grace` for it to exit, then SIGKILL the group.
struct stop_policy {
  /// Close the child's stdin pipe first: well-behaved filters finish on EOF.
  bool close_stdin = true;
  /// The polite signal sent to the child's process group.
  int signal = SIGTERM;
  /// How long the child may take to exit after `signal` before the group gets SIGKILL.
  /// Zero means SIGKILL right after the polite signal.
  std::chrono::milliseconds grace = std::chrono::seconds(5);

  /// SIGKILL at once, no grace.
  static stop_policy immediate() noexcept { return {false, SIGKILL, std::chrono::milliseconds(0)}; }
};

}  // namespace herd
