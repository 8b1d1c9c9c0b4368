// The spawn start method: a child that is this program run again, and herd::init, where such a
// child takes its role before the application's main goes on.
#include <herd/start_method.hpp>

#include "detail/child_registry.hpp"
#include "detail/code_ref.hpp"
#include "detail/descriptors.hpp"
#include "detail/fork_child.hpp"
#include "detail/fork_lock.hpp"
#include "detail/reap.hpp"
#include "detail/spawn_process.hpp"
#include "detail/travelling_child.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char** environ;

namespace herd {
namespace detail {
namespace {

std::atomic<bool> init_called{false};
std::atomic<int> chosen_method{-1};  // a start_method, or -1: set_start_method was not called
std::string program_name = "herd-worker";  // argv[0], for the spawned processes' own argv[0]

struct spawn_attributes {
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_t actions;
  spawn_attributes() {
    ::posix_spawnattr_init(&attributes);
    ::posix_spawn_file_actions_init(&actions);
  }
  ~spawn_attributes() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attributes);
  }
};

}  // namespace

bool initialized() noexcept { return init_called.load(); }

herd::start_method pool_start_method(const std::optional<herd::start_method>& asked, bool initializer_travels) noexcept {
  if (asked) return *asked;
  if (const int chosen = chosen_method.load(); chosen >= 0) return static_cast<herd::start_method>(chosen);
  return initialized() && initializer_travels ? herd::start_method::forkserver : herd::start_method::fork;
}

void require_init(const std::string& what) {
  if (!initialized())
    throw boost::system::system_error(errc::invalid_argument,
                                      "herd: start_method::spawn and forkserver run this program again for '" + what +
                                          "': call herd::init(argc, argv) first thing in main, so that the new "
                                          "process takes its role there instead of running the application");
}

int spawn_self(const std::string& role, const std::vector<int>& descriptors, const std::string& what) {
  require_init(what);
  // Its environment and argv, prepared before anything is duplicated.
  std::vector<std::string> variables;
  for (char** entry = environ; *entry != nullptr; ++entry)
    if (std::strncmp(*entry, "HERD_SPAWNED=", 13) != 0 && std::strncmp(*entry, "HERD_MODULES=", 13) != 0)
      variables.emplace_back(*entry);
  variables.push_back(std::string(spawned_role_variable) + "=" + role);
  variables.push_back(std::string(spawned_modules_variable) + "=" + describe_loaded_modules());
  std::vector<char*> envp;
  for (std::string& v : variables) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string argv0 = program_name;
  char* argv[] = {argv0.data(), nullptr};

  // Copies above the targets (3, 4, …), so that no dup2 of the new process overwrites a source
  // it has not copied yet; close-on-exec, so that only the targets stay open in it.
  const int highest_target = spawned_channel_fd + static_cast<int>(descriptors.size());
  std::vector<unique_fd> sources;
  spawn_attributes spawn;
  for (std::size_t i = 0; i < descriptors.size(); ++i) {
    const int copy = ::fcntl(descriptors[i], F_DUPFD_CLOEXEC, highest_target + 1);
    if (copy < 0)
      throw boost::system::system_error(errc::spawn_failed, "herd: cannot start '" + what + "': dup: " + std::strerror(errno));
    sources.emplace_back(copy);
    ::posix_spawn_file_actions_adddup2(&spawn.actions, copy, spawned_channel_fd + static_cast<int>(i));
  }
  ::posix_spawn_file_actions_addclosefrom_np(&spawn.actions, highest_target);
  // Its own process group, default signal handlers, nothing blocked (fork trap 2).
  sigset_t all, none;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  sigemptyset(&none);
  ::posix_spawnattr_setsigdefault(&spawn.attributes, &all);
  ::posix_spawnattr_setsigmask(&spawn.attributes, &none);
  ::posix_spawnattr_setpgroup(&spawn.attributes, 0);
  ::posix_spawnattr_setflags(&spawn.attributes,
                             POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  const int error = ::posix_spawn(&pid, "/proc/self/exe", &spawn.actions, &spawn.attributes, argv, envp.data());
  if (error != 0)
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + what + "': posix_spawn /proc/self/exe: " + std::strerror(error));
  return pid;
}

std::shared_ptr<function_process> start_role_process(const asio::any_io_executor& ex, const process_options& options,
                                                     const std::type_info& function_type, const void* function_address,
                                                     const spawn_request& request, herd::start_method method) {
  auto child = std::make_shared<function_process>(ex, options.name, options, function_type, function_address);
  remember(child);
  // What this process printed so far comes before what the child prints, as with fork.
  flush_stdio();
  fork_guard guard;
  unique_fd channel_write = open_outcome_channel(*child, options.name);
  std::vector<int> descriptors{channel_write.get()};
  descriptors.insert(descriptors.end(), request.descriptors.begin(), request.descriptors.end());
  int pid = 0;
  try {
    pid = method == herd::start_method::forkserver ? forkserver_start(request.role, descriptors, options.name)
                                                   : spawn_self(request.role, descriptors, options.name);
  } catch (...) {
    child->close_channel();
    throw;
  }
  channel_write.reset();
  unique_fd pidfd(open_pidfd(pid));
  const int pidfd_error = errno;
  watch_started(*child, pid, std::move(pidfd), pidfd_error);
  return child;
}

[[noreturn]] void run_role(std::string_view role, const address_map& addresses) noexcept {
  if (role.rfind("pool-worker ", 0) == 0) run_pool_worker_role(role, addresses);
  if (role.rfind("function-child ", 0) == 0) run_function_child_role(role, addresses);
  std::fprintf(stderr, "herd: this process was started for an unknown role '%.*s'\n", static_cast<int>(role.size()),
               role.data());
  std::_Exit(1);
}

}  // namespace detail

void set_start_method(start_method method) {
  // The forkserver starts now, from this thread (its children die with the thread that started
  // it: call this from main's).
  if (method == start_method::forkserver) detail::forkserver_ready();
  detail::chosen_method = static_cast<int>(method);
}
start_method get_start_method() noexcept {
  const int chosen = detail::chosen_method.load();
  return chosen < 0 ? start_method::fork : static_cast<start_method>(chosen);
}

void init(int argc, char** argv) {
  detail::init_called = true;
  if (argc > 0 && argv != nullptr && argv[0] != nullptr) detail::program_name = argv[0];
  const char* role = std::getenv(detail::spawned_role_variable);
  if (role == nullptr) return;
  // A spawned process: its role, then _exit; the application's main never goes on here.
  const std::string what(role);
  const char* modules = std::getenv(detail::spawned_modules_variable);
  const std::string table(modules != nullptr ? modules : "");
  ::unsetenv(detail::spawned_role_variable);
  ::unsetenv(detail::spawned_modules_variable);
  if (what.rfind("forkserver ", 0) == 0) detail::run_forkserver(what, table);
  static const detail::address_map* addresses = nullptr;  // for the process's life
  try {
    addresses = new detail::address_map(table);
  } catch (...) {
    std::fprintf(stderr, "herd: a spawned process cannot read its parent's module table\n");
    std::_Exit(1);
  }
  detail::run_role(what, *addresses);
}

}  // namespace herd
