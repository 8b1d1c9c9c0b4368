// Starting a child by running this program again (the spawn start method): the parent's side
// (posix_spawn of /proc/self/exe, so the parent's cost does not grow with its memory) and the
// child's, which herd::init hands over to before the application's main does anything else.
#pragma once

#include "function_process.hpp"

#include <herd/start_method.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

namespace herd::detail {

class address_map;

/// The variable a spawned process finds its role in; herd::init looks for it.
inline constexpr const char* spawned_role_variable = "HERD_SPAWNED";
/// The starting process's module table (code_ref.hpp), to translate the code it sends.
inline constexpr const char* spawned_modules_variable = "HERD_MODULES";
/// Descriptors of a spawned process: its outcome channel, then what the request hands over.
inline constexpr int spawned_channel_fd = 3;
inline constexpr int spawned_first_fd = 4;

struct spawn_request {
  std::string role;              // what the new process does (HERD_SPAWNED)
  std::vector<int> descriptors;  // handed over as 4, 5, 6… in this order
};

/// Starts a child for `request`, watched like a forked function child (stop policy, pidfd, group
/// watchdog, outcome channel): by spawn (this program run again) or by the forkserver (a fork
/// of a spawned, single-threaded copy of it). Requires herd::init in main.
std::shared_ptr<function_process> start_role_process(const asio::any_io_executor& ex, const process_options& options,
                                                     const std::type_info& function_type, const void* function_address,
                                                     const spawn_request& request, herd::start_method method);

/// Runs this program again with `role`; `descriptors` become 3, 4, … in it. Returns its pid.
int spawn_self(const std::string& role, const std::vector<int>& descriptors, const std::string& what);

/// Asks the forkserver (started if it is not running, started again once if it died) for a
/// child of this process with `role`; `descriptors` become 3, 4, … in it. Returns its pid.
int forkserver_start(const std::string& role, const std::vector<int>& descriptors, const std::string& what);
/// Starts the forkserver if it is not running.
void forkserver_ready();
/// The forkserver's pid (0: none), a child of this process that is not a task's.
int forkserver_pid() noexcept;
/// In the forkserver: serves requests until the application closes its socket.
[[noreturn]] void run_forkserver(std::string_view role, std::string_view modules) noexcept;

/// Whether herd::init has run in this process (spawn runs main again: it must hand over at once).
bool initialized() noexcept;

/// A pool's start method: the one it asks for, else set_start_method's, else the forkserver when
/// main called herd::init and the initializer can travel, else fork.
herd::start_method pool_start_method(const std::optional<herd::start_method>& asked, bool initializer_travels) noexcept;

/// In a process spawned, or forked by the forkserver, for `role` (a pool worker, a function
/// child), whose layout `addresses` translates the application's code into: runs it to its end.
[[noreturn]] void run_role(std::string_view role, const address_map& addresses) noexcept;
/// In a pool worker forked by the forkserver, whose layout `addresses` translates into.
[[noreturn]] void run_pool_worker_role(std::string_view role, const address_map& addresses) noexcept;

}  // namespace herd::detail
