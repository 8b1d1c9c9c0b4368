// The state of one function child: the watched process, plus the channel its outcome comes back
// on and what it runs.
#pragma once

#include <herd/detail/function_child.hpp>
#include <herd/process_options.hpp>

#include "fork_lock.hpp"
#include "process_core.hpp"
#include "unique_fd.hpp"

#include <optional>
#include <string>
#include <typeinfo>

namespace herd::detail {

/// The parent's side of the outcome socket: appends what it holds, inline bytes and memfds.
void read_outcome(int fd, std::string& received) noexcept;

/// What every start of a function child checks first (not in a daemon; stdio and env usable):
/// throws what is wrong, naming the function; returns the child's name ("process-N" if unset).
std::string checked_child_name(const process_options& options, const std::type_info& function_type,
                               const void* function_address);

struct function_process;
/// Makes `child`'s outcome socket (under the fork lock): keeps its end, returns the child's.
unique_fd open_outcome_channel(function_process& child, const std::string& name);
/// After a fork or a spawn of `pid`: watches its group and attaches `child` to it, or kills and
/// reaps it and throws spawn_failed if it cannot be watched (`pidfd` empty, `pidfd_error` why).
void watch_started(function_process& child, int pid, unique_fd pidfd, int pidfd_error);

struct function_process : process_core {
  // Prepared before the fork; its channel is set and attach() called around the fork.
  function_process(const asio::any_io_executor& ex, std::string name, const process_options& options,
                   const std::type_info& function_type, const void* function_address)
      : process_core(ex, std::move(name), options.stop, false),
        function_type(&function_type),
        function_address(function_address),
        daemon(options.daemon) {}

  // The child never waits to send its outcome (small ones fit in the socket's buffer, larger
  // ones travel in a memfd, see send_outcome), so nothing is read until it has ended: the only
  // wake-up of a start and join is the child's exit. Takes what the socket holds without
  // waiting for an end of file, which a grandchild holding the socket could delay forever.
  void on_reaped() override {
    read_outcome(channel.get(), received);
    close_channel();
  }

  // The socket is a fork exclusion (see fork_process): taken out of the list, then closed.
  void close_channel() { close_excluded(channel.release()); }

  /// What the child runs, described on first use.
  const std::string& function() const {
    if (!function_description) function_description = describe_function(*function_type, function_address);
    return *function_description;
  }

  const std::type_info* function_type;
  const void* function_address;
  mutable std::optional<std::string> function_description;
  bool daemon;
  unique_fd channel;  // this end of the outcome socket
  std::string received;
};

}  // namespace herd::detail
