#include "fork_lock.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

namespace herd::detail {

namespace {
// Alone on its page: the parent writes it only to take and drop the lock around fork.
alignas(4096) fork_page the_fork_page;
}  // namespace

void refresh_cached_pid() noexcept {
  the_fork_page.pid.store(static_cast<int>(::syscall(SYS_getpid)), std::memory_order_relaxed);
}

fork_page& fork_state() noexcept { return the_fork_page; }

int current_pid() noexcept {
  // Registered on first use; a fork before that leaves nothing stale to refresh.
  static const bool registered = (refresh_cached_pid(), ::pthread_atfork(nullptr, nullptr, refresh_cached_pid), true);
  (void)registered;
  return the_fork_page.pid.load(std::memory_order_relaxed);
}

namespace {
// Never destroyed: destructors of static objects may still close pipes at exit. A forked child
// finds the list stale by its owner's pid and starts afresh, without writing to it at fork
// time (every page a fresh child writes costs a copy).
struct exclusion_list {
  pid_t owner = 0;
  std::vector<int> fds;
};

exclusion_list& exclusion_state() {
  static auto* list = new exclusion_list;
  return *list;
}

std::vector<int>& exclusions() {
  auto& list = exclusion_state();
  if (list.owner != current_pid()) {
    list.fds.clear();
    list.owner = current_pid();
  }
  return list.fds;
}
}  // namespace

std::mutex& fork_lock() noexcept {
  // The exclusion list is created with it, in the parent: a child's first use would allocate.
  static const bool list_made = (exclusion_state(), true);
  (void)list_made;
  return the_fork_page.lock;
}

namespace {
thread_local int fork_guard_depth = 0;
}  // namespace

fork_guard::fork_guard() : outermost_(fork_guard_depth == 0) {
  if (outermost_) fork_lock().lock();
  ++fork_guard_depth;
}

fork_guard::~fork_guard() {
  if (fork_guard_depth == 0) return;  // released in a fork child
  --fork_guard_depth;
  if (outermost_) fork_lock().unlock();
}

void fork_guard::release_in_child() noexcept {
  fork_guard_depth = 0;
  fork_lock().unlock();
}

bool fork_guard::held_by_this_thread() noexcept { return fork_guard_depth > 0; }

void exclude_from_forks(int fd) noexcept {
  fork_guard guard;
  try {
    exclusions().push_back(fd);
  } catch (...) {
    // Out of memory: the descriptor stays inheritable, which only delays an end of file.
  }
}

void include_in_forks(int fd) noexcept {
  fork_guard guard;
  auto& fds = exclusions();
  for (auto it = fds.begin(); it != fds.end(); ++it)
    if (*it == fd) {
      fds.erase(it);
      return;
    }
}

void close_excluded(int fd) noexcept {
  if (fd < 0) return;
  fork_guard guard;  // no fork between the two: it would keep a copy
  include_in_forks(fd);
  ::close(fd);
}

void close_fork_exclusions_in_child() noexcept {
  for (int fd : exclusion_state().fds) ::close(fd);  // the parent's list; read only
}

}  // namespace herd::detail
