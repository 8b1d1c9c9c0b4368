#include "detail/code_ref.hpp"

#include <herd/error.hpp>

#include <herd/run.hpp>

#include "support/leak_check.hpp"
#include "support/run.hpp"

#include <doctest/doctest.h>

#include <boost/system/system_error.hpp>

#include <cstdio>
#include <filesystem>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <elf.h>
#include <unistd.h>

namespace {

[[gnu::noinline]] int tripled(int x) { return 3 * x; }

// One ELF note as a linker lays it out: header, name and description, each padded to 4 bytes.
void add_note(std::vector<unsigned char>& notes, const std::string& name, std::uint32_t type, const std::string& desc) {
  Elf64_Nhdr header{static_cast<Elf64_Word>(name.size() + 1), static_cast<Elf64_Word>(desc.size()), type};
  const auto* raw = reinterpret_cast<const unsigned char*>(&header);
  notes.insert(notes.end(), raw, raw + sizeof header);
  notes.insert(notes.end(), name.begin(), name.end());
  notes.push_back(0);
  while (notes.size() % 4 != 0) notes.push_back(0);
  notes.insert(notes.end(), desc.begin(), desc.end());
  while (notes.size() % 4 != 0) notes.push_back(0);
}

herd::error_code failure_of(const auto& call) {
  try {
    call();
  } catch (const boost::system::system_error& e) {
    return e.code();
  }
  return {};
}

std::string encode(const herd::detail::code_ref& ref) {
  return herd::detail::build_id_hex(ref.build_id) + ":" + std::to_string(ref.offset);
}

}  // namespace

// The probe: `herd_tests --herd-code-ref-probe <build id hex>:<offset>` (tests/main.cpp) finds
// the function in its own address space, calls it with 7 and prints the result, or prints the
// refusal and exits 2.
int run_code_ref_probe(const char* encoded) {
  const std::string text(encoded);
  const auto colon = text.find(':');
  herd::detail::code_ref ref;
  for (std::size_t i = 0; i + 1 < colon; i += 2) ref.build_id += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
  ref.offset = std::stoull(text.substr(colon + 1));
  try {
    const auto function = reinterpret_cast<int (*)(int)>(const_cast<void*>(herd::detail::address_of(ref)));
    std::printf("%d\n", function(7));
    return 0;
  } catch (const boost::system::system_error& e) {
    std::printf("%s: %s\n", e.code() == herd::errc::build_mismatch ? "build_mismatch" : "other", e.what());
    return 2;
  }
}

TEST_CASE("code ref: another copy of the binary calls the function the ref names, another build refuses") {
  herd_test::leak_check leaks;
  herd_test::run([](boost::asio::any_io_executor ex) -> boost::asio::awaitable<void> {
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const auto ref = herd::detail::code_ref_of(reinterpret_cast<const void*>(&tripled));
    const herd::command same(self, "--herd-code-ref-probe", encode(ref));
    auto called = co_await herd::async_run(ex, same);
    CHECK(called.status.code() == 0);
    CHECK(called.std_out == "21\n");
    auto forged = ref;
    forged.build_id[1] = static_cast<char>(forged.build_id[1] ^ 0x33);
    const herd::command other(self, "--herd-code-ref-probe", encode(forged));
    auto refused = co_await herd::async_run(ex, other);
    CHECK(refused.status.code() == 2);
    CHECK(refused.std_out.find("build_mismatch: herd: no module of build id " +
                               herd::detail::build_id_hex(forged.build_id)) == 0);
  });
}

TEST_CASE("code ref: a function's module build id and offset lead back to it") {
  const auto ref = herd::detail::code_ref_of(reinterpret_cast<const void*>(&tripled));
  CHECK(ref.build_id.size() >= 8);
  CHECK(ref.offset != 0);
  const void* back = herd::detail::address_of(ref);
  CHECK(back == reinterpret_cast<const void*>(&tripled));
  CHECK(reinterpret_cast<int (*)(int)>(const_cast<void*>(back))(5) == 15);
  // A function of another module (libc) has that module's build id.
  const auto libc = herd::detail::code_ref_of(reinterpret_cast<const void*>(&::getpid));
  CHECK(libc.build_id != ref.build_id);
  CHECK(herd::detail::address_of(libc) == reinterpret_cast<const void*>(&::getpid));
}

TEST_CASE("code ref: another build's id or an offset outside the module is refused naming it") {
  auto ref = herd::detail::code_ref_of(reinterpret_cast<const void*>(&tripled));
  auto other = ref;
  other.build_id[0] = static_cast<char>(other.build_id[0] ^ 0x5a);
  try {
    herd::detail::address_of(other);
    FAIL("accepted");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == herd::errc::build_mismatch);
    CHECK(std::string(e.what()).find(herd::detail::build_id_hex(other.build_id)) != std::string::npos);
  }
  auto far = ref;
  far.offset = std::uint64_t{1} << 40;
  CHECK(failure_of([&] { herd::detail::address_of(far); }) == herd::errc::build_mismatch);
  // The heap is no module's code.
  const auto data = std::make_unique<int>(1);
  CHECK(failure_of([&] { herd::detail::code_ref_of(data.get()); }) == herd::errc::invalid_argument);
}

TEST_CASE("code ref: the build id is found among notes and nothing is read past cut or bad notes") {
  std::vector<unsigned char> notes;
  add_note(notes, "GNU", NT_GNU_ABI_TAG, std::string("\0\0\0\0\3\0\0\0\2\0\0\0\0\0\0\0", 16));
  add_note(notes, "Other", NT_GNU_BUILD_ID, "not this");
  add_note(notes, "GNU", NT_GNU_BUILD_ID, "\x01\x02\x03\x04\x05");
  const auto id = herd::detail::find_build_id(notes);
  REQUIRE(id.has_value());
  CHECK(*id == "\x01\x02\x03\x04\x05");
  CHECK(herd::detail::build_id_hex(*id) == "0102030405");
  // Every shorter prefix that cuts the build id note finds nothing, and reads nothing beyond.
  const std::size_t last = notes.size() - (sizeof(Elf64_Nhdr) + 4 + 8);
  for (std::size_t cut = last; cut < notes.size(); ++cut)
    CHECK_FALSE(herd::detail::find_build_id(std::span(notes.data(), cut)).has_value());
  CHECK_FALSE(herd::detail::find_build_id({}).has_value());
  // A note that claims a larger name than there is.
  std::vector<unsigned char> lying;
  add_note(lying, "GNU", NT_GNU_BUILD_ID, "abcd");
  lying[0] = 0xff;
  CHECK_FALSE(herd::detail::find_build_id(lying).has_value());
}

TEST_CASE("code ref: a module table translates the sender's addresses and refuses another build's") {
  const std::string table = herd::detail::describe_loaded_modules();
  const herd::detail::address_map same(table);
  const auto here = reinterpret_cast<std::uint64_t>(&tripled);
  CHECK(same.translate(here) == here);  // one address space: nothing moves
  // The executable's line with another build id: its code is refused, libc's still resolves.
  const auto ref = herd::detail::code_ref_of(reinterpret_cast<const void*>(&tripled));
  const std::string id = herd::detail::build_id_hex(ref.build_id);
  std::string forged = table;
  const auto at = forged.find(id);
  REQUIRE(at != std::string::npos);
  forged[at] = forged[at] == 'a' ? 'b' : 'a';
  const herd::detail::address_map other(forged);
  CHECK(failure_of([&] { other.translate(here); }) == herd::errc::build_mismatch);
  const auto libc = reinterpret_cast<std::uint64_t>(&::getpid);
  CHECK(other.translate(libc) == libc);
  // An address in no module, and a table that cannot be read.
  CHECK(failure_of([&] { same.translate(8); }) == herd::errc::invalid_argument);
  CHECK(failure_of([&] { herd::detail::address_map("not a table\n"); }) == herd::errc::bad_message);
}

