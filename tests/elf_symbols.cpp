#include "detail/elf_symbols.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

// Not exported (internal linkage, and no -rdynamic): only .symtab names it.
[[gnu::noinline]] int hidden_helper_for_elf_test(int x) { return x * 3; }

std::vector<unsigned char> read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("elf symbols: a function the dynamic table does not export is named from .symtab") {
  CHECK(hidden_helper_for_elf_test(1) == 3);
  const auto name = herd::detail::function_symbol(reinterpret_cast<const void*>(&hidden_helper_for_elf_test));
  REQUIRE(name.has_value());
  CHECK(name->find("hidden_helper_for_elf_test") != std::string::npos);
  // An address inside a function (not its start) names nothing.
  const auto* inside = reinterpret_cast<const unsigned char*>(&hidden_helper_for_elf_test) + 1;
  CHECK_FALSE(herd::detail::function_symbol(inside).has_value());
  CHECK_FALSE(herd::detail::function_symbol(nullptr).has_value());
}

TEST_CASE("elf symbols: images that are not ELF, are cut short or are 32-bit name nothing") {
  const std::vector<unsigned char> self = read_file("/proc/self/exe");
  REQUIRE(self.size() > 64);
  const std::vector<unsigned char> garbage(4096, 0x5a);
  CHECK(herd::detail::symbol_in_image(garbage, 0).empty());
  CHECK(herd::detail::symbol_in_image({}, 0).empty());
  // Every prefix of the real file: the section table or the symbols lie beyond it.
  for (const std::size_t cut : {std::size_t{16}, std::size_t{63}, std::size_t{64}, self.size() / 2, self.size() - 1})
    CHECK(herd::detail::symbol_in_image(std::span(self.data(), cut), 0x1000).empty());
  std::vector<unsigned char> narrow = self;
  narrow[4] = 1;  // ELFCLASS32
  CHECK(herd::detail::symbol_in_image(narrow, 0x1000).empty());
}
