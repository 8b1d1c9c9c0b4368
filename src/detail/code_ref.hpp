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
#include <vector>

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

/// This process's loaded modules (build id, load bias, address span), as text for a process it
/// starts from the same binary (an environment variable of a spawned worker).
std::string describe_loaded_modules();

/// In a process started from the same binary: translates the starting process's code addresses
/// into this one's, module by module (the build ids of `described` against this process's).
class address_map {
 public:
  /// `described`: what describe_loaded_modules() gave in the starting process. Throws
  /// system_error(errc::bad_message) if it cannot be read.
  explicit address_map(std::string_view described);
  /// The address here of the code at `address` there. Throws system_error(errc::build_mismatch)
  /// if its module is not loaded here (another build), or invalid_argument if no module held it.
  std::uint64_t translate(std::uint64_t address) const;

 private:
  struct span {
    std::uint64_t low, high;
    std::string build_id;
    bool here;             // a module of that build id is loaded in this process
    std::int64_t shift;    // its bias here less its bias there
  };
  std::vector<span> spans_;
};

}  // namespace herd::detail
