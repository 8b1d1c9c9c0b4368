// A function child started by spawn or the forkserver: its role (the text a spawned process
// finds in herd::init) and its call (what the parent puts in a memfd for it), both pure, and the
// child's side.
#pragma once

#include <herd/detail/travelling_call.hpp>

#include "unique_fd.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace herd::detail {

class address_map;

struct function_child_start {
  int parent = 0;
  bool die_with_parent = true;
  bool daemon = false;
  std::string name;
};
std::string function_child_role(const function_child_start& start);
/// False if `role` is not one function_child_role made.
bool parse_function_child_role(std::string_view role, function_child_start& start);

/// What the child runs, as the parent's addresses (translated on arrival), and its environment.
struct child_call {
  std::uint64_t entry = 0;
  std::uint64_t callable = 0;
  std::string args;
  std::vector<std::pair<std::string, std::string>> env;
};
std::string encode_child_call(const travelling_call& call, const std::vector<std::pair<std::string, std::string>>& env);
/// Throws system_error(errc::bad_message) for bytes encode_child_call did not make.
child_call decode_child_call(std::string_view bytes);

/// A memfd holding `bytes` (a call, for a process being started); throws spawn_failed naming `what`.
unique_fd call_memory(const std::string& bytes, const std::string& what);
/// What a call memfd holds (empty if it cannot be read: decoding then says so).
std::string read_call_memory(int fd);
/// Runs `call` (the parent's addresses, translated by `addresses`), its encoded result into `out`.
/// Throws what the call throws, or build_mismatch for code of another build.
void run_child_call(const child_call& call, const address_map& addresses, std::string& out);

/// In the child (spawned, or forked by the forkserver), whose layout `addresses` translates into:
/// applies the role, runs the call, sends its outcome and leaves with _exit.
[[noreturn]] void run_function_child_role(std::string_view role, const address_map& addresses) noexcept;

}  // namespace herd::detail
