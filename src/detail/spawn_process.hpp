// Starting a child by running this program again (the spawn start method): the parent's side
// (posix_spawn of /proc/self/exe, so the parent's cost does not grow with its memory) and the
// child's, which herd::init hands over to before the application's main does anything else.
#pragma once

#include "function_process.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

namespace herd::detail {

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

/// Runs this program again as a child for `request`, watched like a forked function child
/// (stop policy, pidfd, group watchdog, outcome channel). Requires herd::init in main.
std::shared_ptr<function_process> spawn_process(const asio::any_io_executor& ex, const process_options& options,
                                                const std::type_info& function_type, const void* function_address,
                                                const spawn_request& request);

/// Whether herd::init has run in this process (spawn runs main again: it must hand over at once).
bool initialized() noexcept;

/// In a spawned pool worker: runs it to its end (pool_worker.cpp).
[[noreturn]] void run_spawned_pool_worker(std::string_view role, std::string_view modules) noexcept;

}  // namespace herd::detail
