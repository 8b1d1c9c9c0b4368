// The name of a function from its module's own symbol table (.symtab), for messages: dladdr
// sees only exported symbols, so without -rdynamic a function of the executable (and a static
// one, always) has no name there. Reading the table is pure (symbol_in_image, tested on the test
// binary itself); function_symbol maps the module's file once and keeps it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace herd::detail {

/// The function symbol of the ELF image `image` whose value is `address` (an address as the
/// image's symbol table counts them: relative to the load base for a position-independent one).
/// Empty if the image is not a 64-bit ELF file, has no .symtab, or no function is there.
std::string_view symbol_in_image(std::span<const unsigned char> image, std::uint64_t address) noexcept;

/// The mangled name of the function at `function` in this process, from its module's .symtab
/// (nothing if the module was stripped or cannot be read).
std::optional<std::string> function_symbol(const void* function);

}  // namespace herd::detail
