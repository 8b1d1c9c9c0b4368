// Code that crosses into another copy of the same binary (a spawned worker today; another host
// later): a function's address as the build id of the module it is in and its offset from that
// module's load bias. The receiving process finds its own loaded module with that build id and
// adds its own bias, so address-space randomisation does not matter; a process with no module
// of that build id refuses (errc::build_mismatch), so a worker of another build never jumps into
// the wrong code. Within one address space (fork, forkserver) plain addresses travel instead.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace herd::detail {

struct code_ref {
  std::string build_id;  // the module's NT_GNU_BUILD_ID bytes
  std::uint64_t offset = 0;
  friend bool operator==(const code_ref&, const code_ref&) = default;
};

/// The build id among the notes of a PT_NOTE segment (as mapped, its entries padded to
/// `alignment`: 4, or 8 for some segments), if one is there; nothing for notes cut short or
/// malformed.
std::optional<std::string_view> find_build_id(std::span<const unsigned char> notes, std::size_t alignment = 4) noexcept;

/// Lower-case hex, for messages.
std::string build_id_hex(std::string_view build_id);

/// Where `address` is, as a code_ref. Throws system_error(errc::invalid_argument) naming the
/// address if no loaded module holds it, or naming the module if it has no build id.
code_ref code_ref_of(const void* address);

/// The address `ref` names in this process. Throws system_error(errc::build_mismatch) naming the
/// build id if no loaded module has it, or if the offset lies outside that module.
const void* address_of(const code_ref& ref);

}  // namespace herd::detail
