#include "code_ref.hpp"

#include <herd/error.hpp>

#include <boost/system/system_error.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <memory>
#include <mutex>
#include <vector>

#include <elf.h>
#include <link.h>
#include <unistd.h>

namespace herd::detail {
namespace {

// A loaded module: its load bias, the span of its segments, its build id.
struct loaded_module {
  std::uintptr_t bias = 0;
  std::uintptr_t low = 0, high = 0;
  std::string build_id;
  std::string name;
};

std::vector<loaded_module> read_modules() {
  std::vector<loaded_module> modules;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        loaded_module module;
        module.bias = info->dlpi_addr;
        module.name = info->dlpi_name != nullptr ? info->dlpi_name : "";
        bool any = false;
        for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& segment = info->dlpi_phdr[i];
          const std::uintptr_t start = info->dlpi_addr + segment.p_vaddr;
          if (segment.p_type == PT_LOAD) {
            module.low = any ? std::min(module.low, start) : start;
            module.high = std::max(module.high, start + segment.p_memsz);
            any = true;
          } else if (segment.p_type == PT_NOTE && module.build_id.empty()) {
            const auto* bytes = reinterpret_cast<const unsigned char*>(start);
            if (const auto id = find_build_id({bytes, segment.p_memsz}, segment.p_align))
              module.build_id = std::string(*id);
          }
        }
        if (any) static_cast<std::vector<loaded_module>*>(data)->push_back(std::move(module));
        return 0;
      },
      &modules);
  return modules;
}

// The modules, read again whenever a library has been loaded or unloaded since; shared, so a
// caller holds the table it was given without copying it.
std::shared_ptr<const std::vector<loaded_module>> modules_now() {
  struct counts {
    unsigned long long adds = 0, subs = 0;
  } now;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        *static_cast<counts*>(data) = {info->dlpi_adds, info->dlpi_subs};
        return 1;  // the first module's counts are the process's
      },
      &now);
  static std::mutex mutex;
  static std::shared_ptr<const std::vector<loaded_module>> cached;
  static counts seen{~0ull, ~0ull};
  std::lock_guard lock(mutex);
  if (!cached || now.adds != seen.adds || now.subs != seen.subs) {
    cached = std::make_shared<const std::vector<loaded_module>>(read_modules());
    seen = now;
  }
  return cached;
}

}  // namespace

std::optional<std::string_view> find_build_id(std::span<const unsigned char> notes, std::size_t alignment) noexcept {
  std::size_t at = 0;
  const std::size_t mask = alignment == 8 ? 7 : 3;
  const auto aligned = [mask](std::size_t n) { return (n + mask) & ~mask; };
  while (notes.size() - at >= sizeof(ElfW(Nhdr))) {
    ElfW(Nhdr) header;
    std::memcpy(&header, notes.data() + at, sizeof header);
    at += sizeof header;
    const std::size_t name_size = aligned(header.n_namesz), desc_size = aligned(header.n_descsz);
    if (name_size > notes.size() - at || desc_size > notes.size() - at - name_size) return std::nullopt;
    const bool gnu = header.n_namesz == 4 && std::memcmp(notes.data() + at, "GNU", 4) == 0;
    if (gnu && header.n_type == NT_GNU_BUILD_ID && header.n_descsz != 0)
      return std::string_view(reinterpret_cast<const char*>(notes.data() + at + name_size), header.n_descsz);
    at += name_size + desc_size;
  }
  return std::nullopt;
}

std::string build_id_hex(std::string_view build_id) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * build_id.size());
  for (const char c : build_id) {
    const auto byte = static_cast<unsigned char>(c);
    hex += digits[byte >> 4];
    hex += digits[byte & 15];
  }
  return hex;
}

code_ref code_ref_of(const void* address) {
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  const auto modules = modules_now();  // held: another thread may read the table again
  for (const loaded_module& module : *modules) {
    if (at < module.low || at >= module.high) continue;
    if (module.build_id.empty())
      throw boost::system::system_error(
          errc::invalid_argument,
          "herd: " + (module.name.empty() ? std::string("the executable") : module.name) +
              " has no build id, so its code cannot travel to a spawned process (link with -Wl,--build-id)");
    return {module.build_id, at - module.bias};
  }
  char text[32];
  std::snprintf(text, sizeof text, "%p", address);
  throw boost::system::system_error(errc::invalid_argument,
                                    std::string("herd: address ") + text + " is in no loaded module: it is not code");
}

const void* address_of(const code_ref& ref) {
  const auto modules = modules_now();  // held: another thread may read the table again
  for (const loaded_module& module : *modules) {
    if (module.build_id != ref.build_id) continue;
    const std::uintptr_t at = module.bias + ref.offset;
    if (at < module.low || at >= module.high)
      throw boost::system::system_error(errc::build_mismatch, "herd: offset " + std::to_string(ref.offset) +
                                                                  " lies outside the module of build id " +
                                                                  build_id_hex(ref.build_id));
    return reinterpret_cast<const void*>(at);
  }
  throw boost::system::system_error(errc::build_mismatch,
                                    "herd: no module of build id " + build_id_hex(ref.build_id) +
                                        " is loaded in this process (pid " + std::to_string(::getpid()) +
                                        "): it runs another build of the program");
}

std::string describe_loaded_modules() {
  // One module a line: build id (hex, "-" for none), bias, low, high (hex).
  std::string text;
  char numbers[64];
  const auto modules = modules_now();  // held: another thread may read the table again
  for (const loaded_module& module : *modules) {
    text += module.build_id.empty() ? "-" : build_id_hex(module.build_id);
    std::snprintf(numbers, sizeof numbers, " %lx %lx %lx\n", static_cast<unsigned long>(module.bias),
                  static_cast<unsigned long>(module.low), static_cast<unsigned long>(module.high));
    text += numbers;
  }
  return text;
}

address_map::address_map(std::string_view described) {
  const auto here = modules_now();
  while (!described.empty()) {
    const std::size_t end = described.find('\n');
    const std::string line(described.substr(0, end));
    described = end == std::string_view::npos ? std::string_view() : described.substr(end + 1);
    char id[256];
    unsigned long bias = 0, low = 0, high = 0;
    if (std::sscanf(line.c_str(), "%255s %lx %lx %lx", id, &bias, &low, &high) != 4 || low > high)
      throw boost::system::system_error(errc::bad_message, "herd: a spawned process's module table is unreadable: '" +
                                                               line + "'");
    span s{low, high, {}, false, 0};
    if (std::string_view(id) != "-") {
      for (std::size_t i = 0; id[i] != '\0' && id[i + 1] != '\0'; i += 2)
        s.build_id += static_cast<char>(std::stoi(std::string(id + i, 2), nullptr, 16));
      for (const loaded_module& module : *here) {
        if (module.build_id != s.build_id) continue;
        s.here = true;
        s.shift = static_cast<std::int64_t>(module.bias) - static_cast<std::int64_t>(bias);
        break;
      }
    }
    spans_.push_back(std::move(s));
  }
}

std::uint64_t address_map::translate(std::uint64_t address) const {
  for (const span& s : spans_) {
    if (address < s.low || address >= s.high) continue;
    if (!s.here)
      throw boost::system::system_error(
          errc::build_mismatch,
          "herd: the code sent is in a module " +
              (s.build_id.empty() ? std::string("without a build id") : "of build id " + build_id_hex(s.build_id)) +
              " that this process (pid " + std::to_string(::getpid()) + ") has not loaded: it runs another build");
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(address) + s.shift);
  }
  throw boost::system::system_error(errc::invalid_argument, "herd: the code sent (at " + std::to_string(address) +
                                                                " in the sender) is in none of its modules");
}

}  // namespace herd::detail
