#include "elf_symbols.hpp"

#include "unique_fd.hpp"

#include <cstring>
#include <map>
#include <mutex>

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>

namespace herd::detail {
namespace {

template <typename T>
bool read_at(std::span<const unsigned char> image, std::uint64_t offset, T& out) noexcept {
  if (offset > image.size() || image.size() - offset < sizeof(T)) return false;
  std::memcpy(&out, image.data() + offset, sizeof(T));
  return true;
}

// A module's file, mapped read-only for as long as the process lives (messages are rare; the
// pages are the page cache's).
struct mapped_module {
  std::span<const unsigned char> image;
};

}  // namespace

std::string_view symbol_in_image(std::span<const unsigned char> image, std::uint64_t address) noexcept {
  Elf64_Ehdr header;
  if (!read_at(image, 0, header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_shentsize != sizeof(Elf64_Shdr))
    return {};
  for (std::uint64_t i = 0; i < header.e_shnum; ++i) {
    Elf64_Shdr symbols;
    if (!read_at(image, header.e_shoff + i * sizeof(Elf64_Shdr), symbols)) return {};
    if (symbols.sh_type != SHT_SYMTAB || symbols.sh_entsize != sizeof(Elf64_Sym)) continue;
    Elf64_Shdr strings;
    if (!read_at(image, header.e_shoff + std::uint64_t{symbols.sh_link} * sizeof(Elf64_Shdr), strings)) return {};
    for (std::uint64_t offset = 0; offset + sizeof(Elf64_Sym) <= symbols.sh_size; offset += sizeof(Elf64_Sym)) {
      Elf64_Sym symbol;
      if (!read_at(image, symbols.sh_offset + offset, symbol)) return {};
      if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_value != address || symbol.st_name == 0 ||
          symbol.st_name >= strings.sh_size || strings.sh_offset + strings.sh_size > image.size())
        continue;
      const char* name = reinterpret_cast<const char*>(image.data() + strings.sh_offset + symbol.st_name);
      return {name, ::strnlen(name, strings.sh_size - symbol.st_name)};
    }
  }
  return {};
}

std::optional<std::string> function_symbol(const void* function) {
  Dl_info info{};
  link_map* module = nullptr;
  if (function == nullptr || ::dladdr1(function, &info, reinterpret_cast<void**>(&module), RTLD_DL_LINKMAP) == 0 ||
      module == nullptr)
    return std::nullopt;
  // The executable's link map has no name; /proc/self/exe is its file.
  const std::string path = module->l_name[0] == '\0' ? "/proc/self/exe" : module->l_name;
  static std::mutex mutex;
  static std::map<std::string, mapped_module> modules;
  std::lock_guard lock(mutex);
  auto it = modules.find(path);
  if (it == modules.end()) {
    mapped_module mapped;
    unique_fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (file && ::fstat(file.get(), &st) == 0 && st.st_size > 0) {
      const auto size = static_cast<std::size_t>(st.st_size);
      void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.get(), 0);
      if (base != MAP_FAILED) mapped.image = {static_cast<const unsigned char*>(base), size};
    }
    it = modules.emplace(path, mapped).first;
  }
  // Symbols count from the module's load bias (zero for an executable that is not PIE).
  const std::string_view name =
      symbol_in_image(it->second.image, reinterpret_cast<std::uintptr_t>(function) - module->l_addr);
  if (name.empty()) return std::nullopt;
  return std::string(name);
}

}  // namespace herd::detail
