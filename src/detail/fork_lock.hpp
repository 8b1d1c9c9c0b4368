// What keeps herd consistent across fork(): the fork page (this process's pid and identity),
// herd's fork lock, and the descriptors a forked function child must close (fork traps 3 and 5).
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace herd::detail {

/// What a fork child writes first, together on one page: each page a fresh child writes costs
/// a copy (three pages were three faults, ~2 µs each here).
struct fork_page {
  std::atomic<int> pid{0};           // current_pid()
  std::mutex lock;                   // fork_lock()
  const std::string* process_name = nullptr;  // this_process::name(); null in the main process
  bool daemon = false;
};
fork_page& fork_state() noexcept;

/// This process's pid without a system call (glibc no longer caches getpid()): kept current
/// by a pthread_atfork child handler, so it is right after every fork() — herd's and the
/// user's. Channels and registries ask it on every operation to tell a forked copy of their
/// state from their own.
int current_pid() noexcept;
/// After a process is made without fork() (the forkserver's clone skips pthread_atfork).
void refresh_cached_pid() noexcept;

/// Descriptors a forked function child must not keep: the parent's ends of other children's
/// stdio pipes, pidfds and outcome sockets (a fork child holding a stdin pipe's write end would
/// keep that program from ever reading end of file). Each is registered while herd's fork lock
/// is held from its creation on (a fork_guard), so no fork sees it unregistered, and taken out
/// of the list as it is closed, both under the lock, so that no fork keeps a copy and a later
/// descriptor with its number is never closed.
void exclude_from_forks(int fd) noexcept;
void include_in_forks(int fd) noexcept;
/// include_in_forks, then close, under the fork lock (a fork in between would keep a copy).
void close_excluded(int fd) noexcept;
/// In a fork child: closes every excluded descriptor and forgets them.
void close_fork_exclusions_in_child() noexcept;
/// Held across fork() so that no herd registry is half-updated in the child.
std::mutex& fork_lock() noexcept;

/// Holds herd's fork lock on this thread; re-entrant on one thread (a pipeline's start holds it
/// while each stage's launch takes it again). Every descriptor a launch or fork makes for a child
/// is created, handed out or closed under it, so that no fork on another thread copies one.
class fork_guard {
 public:
  fork_guard();
  ~fork_guard();
  fork_guard(const fork_guard&) = delete;
  fork_guard& operator=(const fork_guard&) = delete;
  /// In the child of a fork made under this guard: lets go of the child's copy of the lock.
  void release_in_child() noexcept;
  static bool held_by_this_thread() noexcept;

 private:
  bool outermost_;
};

}  // namespace herd::detail
