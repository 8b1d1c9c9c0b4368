#include "child_registry.hpp"

#include "fork_lock.hpp"
#include "function_process.hpp"
#include "reap.hpp"

#include <herd/process.hpp>

#include <cstdlib>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <vector>

namespace herd {
namespace detail {
namespace {

// A detached child: herd only needs to reap it (or, at exit, stop or join it), which plain
// system calls do without any executor.
struct detached_child {
  pid_t pid;
  int pidfd;  // owned
  bool daemon;
  stop_policy policy;
  std::string name;
};

struct child_registry {
  pid_t owner = 0;  // a plain fork() copies the registry; the copy is not the copier's
  std::vector<std::weak_ptr<function_process>> children;
  std::vector<detached_child> detached;
};

// The function children of this process. Guarded by fork_lock(); never destroyed (the atexit
// handler and late destructors use it).
child_registry& registry() {
  static auto* self = new child_registry;
  if (self->owner != current_pid()) {
    self->children.clear();
    self->detached.clear();  // their descriptors were the original's, closed by exec or not ours
    self->owner = current_pid();
  }
  return *self;
}

// Reaps detached children that have ended, as Python reaps finished processes whenever a new
// one starts or active_children() is asked. Called with fork_lock() held.
void reap_finished_detached() {
  auto& detached = registry().detached;
  std::erase_if(detached, [](const detached_child& c) {
    if (!reap(c.pid, c.pidfd, false, false, exit_reason::normal)) return false;
    close_excluded(c.pidfd);
    return true;
  });
}

// At a normal exit, as Python does: daemons are stopped, other children still running are
// joined. (A crash kills them all through PR_SET_PDEATHSIG.) Executors may be gone by now, so
// this uses plain system calls only.
void finish_children_at_exit() {
  std::vector<std::shared_ptr<function_process>> alive;
  std::vector<detached_child> detached;
  {
    fork_guard guard;
    for (auto& weak : registry().children)
      if (auto child = weak.lock()) alive.push_back(std::move(child));
    registry().children.clear();
    detached.swap(registry().detached);
  }
  for (auto& child : alive) child->finish_at_exit(child->daemon);
  for (auto& c : detached) {
    if (c.daemon)
      stop_and_reap(c.pid, c.pidfd, c.policy, exit_reason::parent_stopping);
    else
      reap(c.pid, c.pidfd, true, false, exit_reason::normal);
    close_excluded(c.pidfd);
  }
}

}  // namespace

void remember(const std::shared_ptr<function_process>& child) {
  static std::once_flag at_exit;
  std::call_once(at_exit, [] { std::atexit(finish_children_at_exit); });
  fork_guard guard;
  auto& children = registry().children;
  std::erase_if(children, [](const auto& weak) {
    auto child = weak.lock();
    return !child || child->status;
  });
  children.push_back(child);
  reap_finished_detached();
}

void remember_detached(const function_process& child, int pidfd) noexcept {
  fork_guard guard;
  try {
    registry().detached.push_back(detached_child{child.pid, pidfd, child.daemon, child.policy, child.name});
  } catch (...) {
    close_excluded(pidfd);  // out of memory: the child will be a zombie until this process ends
  }
}

}  // namespace detail

std::vector<child_info> active_children() {
  std::vector<std::shared_ptr<detail::function_process>> children;
  std::vector<child_info> running;
  {
    detail::fork_guard guard;
    for (auto& weak : detail::registry().children)
      if (auto child = weak.lock()) children.push_back(std::move(child));
    detail::reap_finished_detached();
    for (const auto& c : detail::registry().detached) running.push_back(child_info{c.pid, c.name, c.daemon});
  }
  for (auto& child : children)
    if (child->pid != 0 && !child->try_reap()) running.push_back(child_info{child->pid, child->name, child->daemon});
  return running;
}

}  // namespace herd
