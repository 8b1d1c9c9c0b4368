#include "group_watchdog.hpp"

#include "descriptors.hpp"
#include "fork_lock.hpp"
#include "launcher.hpp"
#include "reap.hpp"
#include "unique_fd.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace herd::detail {
namespace {

// The outer shell backgrounds the loop and exits at once, so the loop is nobody's child here
// (the init process or a subreaper adopts it) and holds nothing of this process but the pipe
// (fd 3) and the table (fd 4). Nothing is ever written to the pipe: the loop sleeps in read()
// until its end of file, this process's death, and only then reads the table, a memfd of
// 32-bit pgids (0: a free slot) that this process keeps in place through a shared mapping. A
// start or a reap so costs a store, not a wake-up of the loop (two per program, read a byte per
// system call, took 0.13x of a spawn's time on a 2-vCPU machine: bench/README.md).
constexpr const char* script =
    "exec 3<&0 4<&1 </dev/null >/dev/null\n"
    "trap '' HUP INT QUIT TERM PIPE\n"
    "(\n"
    "  while read -r _ <&3; do :; done\n"
    "  for g in $(/usr/bin/od -An -v -tu4 <&4); do\n"
    "    case $g in 0) ;; *) kill -9 -$g 2>/dev/null ;; esac\n"
    "  done\n"
    ") &\n";

constexpr std::size_t first_capacity = 4096;  // slots; the memfd is sparse until they are used

struct watchdog_state {
  int owner = 0;         // the process this watchdog belongs to (a fork child makes its own)
  int pipe = -1;         // write end: its end of file is this process's death
  int table = -1;        // the memfd of pgids
  std::atomic<std::uint32_t>* slots = nullptr;  // the table, mapped: the one record of who is watched
  std::size_t capacity = 0;
  std::size_t used = 0;  // slots below this have been handed out once; the rest are untouched
};
watchdog_state the_watchdog;  // guarded by the fork lock

bool start_watchdog(watchdog_state& w) noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  unique_fd read_end(fds[0]), write_end(move_above_stdio(fds[1]));
  unique_fd table(move_above_stdio(::memfd_create("herd-watchdog", MFD_CLOEXEC)));
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  unique_fd null_fd(null >= 0 ? move_above_stdio(null) : -1);
  unique_fd input(move_above_stdio(read_end.release()));
  if (!write_end || !input || !null_fd || !table) return false;
  const std::size_t bytes = first_capacity * sizeof(std::uint32_t);
  if (::ftruncate(table.get(), static_cast<off_t>(bytes)) != 0) return false;
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, table.get(), 0);
  if (mapped == MAP_FAILED) return false;

  char shell[] = "/bin/sh", dash_c[] = "-c";
  char* argv[] = {shell, dash_c, const_cast<char*>(script), nullptr};
  char* envp[] = {nullptr};
  launch_request request;
  request.path = "/bin/sh";
  request.argv = argv;
  request.envp = envp;
  request.stdio[0] = input.get();
  request.stdio[1] = table.get();  // read back as fd 4 (a memfd is open for reading and writing)
  request.stdio[2] = null_fd.get();
  request.die_with_parent = false;  // it must outlive this process: that is its whole point
  const launch_result launched = launch(request);
  if (launched.error != 0) {
    ::munmap(mapped, bytes);
    return false;
  }
  // The outer shell ends as soon as the loop is in the background.
  reap_discarding_status(launched.pidfd);
  ::close(launched.pidfd);
  w.pipe = write_end.release();
  w.table = table.release();
  exclude_from_forks(w.pipe);
  exclude_from_forks(w.table);
  w.slots = static_cast<std::atomic<std::uint32_t>*>(mapped);
  w.capacity = first_capacity;
  return true;
}

// The slot holding `pgid` (0: a free one) below the high-water mark, or `used` if none does. The
// mark is the most groups ever watched at once, so the scan is short.
std::size_t find_slot(const watchdog_state& w, std::uint32_t pgid) noexcept {
  std::size_t i = 0;
  while (i < w.used && w.slots[i].load(std::memory_order_relaxed) != pgid) ++i;
  return i;
}

// A free slot, the table grown if need be (the memfd and its mapping double); false if it
// cannot grow.
bool take_slot(watchdog_state& w, std::size_t& slot) noexcept {
  slot = find_slot(w, 0);
  if (slot < w.used) return true;
  if (w.used == w.capacity) {
    const std::size_t old_bytes = w.capacity * sizeof(std::uint32_t), new_bytes = 2 * old_bytes;
    if (::ftruncate(w.table, static_cast<off_t>(new_bytes)) != 0) return false;
    void* moved = ::mremap(w.slots, old_bytes, new_bytes, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) return false;
    w.slots = static_cast<std::atomic<std::uint32_t>*>(moved);
    w.capacity *= 2;
  }
  slot = w.used++;
  return true;
}

}  // namespace

void watch_group(int pgid) noexcept {
  fork_guard guard;
  watchdog_state& w = the_watchdog;
  if (w.owner != current_pid()) {
    // A fork child: the state is a copy of its parent's and the table its parent's, shared: not
    // ours to write. Its descriptors are closed in every fork child already (fork exclusions).
    if (w.slots) ::munmap(w.slots, w.capacity * sizeof(std::uint32_t));
    w = watchdog_state{};
    w.owner = current_pid();
  }
  if (w.pipe < 0 && !start_watchdog(w)) return;
  std::size_t slot;
  if (take_slot(w, slot)) w.slots[slot].store(static_cast<std::uint32_t>(pgid), std::memory_order_relaxed);
}

void forget_group(int pgid) noexcept {
  fork_guard guard;
  watchdog_state& w = the_watchdog;
  if (w.owner != current_pid() || !w.slots || pgid <= 0) return;
  const std::size_t slot = find_slot(w, static_cast<std::uint32_t>(pgid));
  if (slot < w.used) w.slots[slot].store(0, std::memory_order_relaxed);
}

}  // namespace herd::detail
