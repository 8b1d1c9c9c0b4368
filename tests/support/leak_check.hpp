// Counts what a test must give back: file descriptors and child processes (zombies included).
#pragma once

#include <doctest/doctest.h>

#include "detail/spawn_process.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace herd_test {

inline int count_open_fds() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count - 1;  // the directory iterator's own descriptor
}

struct proc_stat {
  int pid = 0;
  char state = '?';
  int ppid = 0;
};

/// Reads /proc/<pid>/stat; state '?' if the process does not exist.
inline proc_stat read_stat(int pid) {
  // POSIX reads: a process reaped while we read makes read() fail with ESRCH, which
  // std::ifstream would turn into an exception.
  std::string text;
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buffer[1024];
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) text.assign(buffer, static_cast<std::size_t>(n));
    ::close(fd);
  }
  proc_stat s;
  auto close = text.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream rest(text.substr(close + 2));
  s.pid = pid;
  rest >> s.state >> s.ppid;
  return s;
}

/// The pids whose parent is this process (running or zombie).
inline std::vector<int> child_pids() {
  std::vector<int> pids;
  const int self = ::getpid();
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const proc_stat s = read_stat(std::stoi(name));
    // The forkserver is a helper of the whole process, not a test's child.
    if (s.ppid == self && s.pid != herd::detail::forkserver_pid()) pids.push_back(s.pid);
  }
  return pids;
}

/// True once `pid` no longer runs (gone, or a zombie waiting for its new parent).
/// This process's resident memory (VmRSS), in KiB.
inline long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

inline bool wait_until_gone(int pid, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    const char state = read_stat(pid).state;
    if (state == '?' || state == 'Z' || state == 'X') return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

/// Checks at the end of its scope that no descriptor and no child process was left behind.
class leak_check {
 public:
  leak_check() : fds_(count_open_fds()) {}
  leak_check(const leak_check&) = delete;
  leak_check& operator=(const leak_check&) = delete;
  ~leak_check() {
    CHECK_MESSAGE(count_open_fds() == fds_, "file descriptors leaked");
    const auto children = child_pids();
    std::string described;
    for (int pid : children) described += " " + std::to_string(pid) + "(" + read_stat(pid).state + ")";
    CHECK_MESSAGE(children.empty(), "child processes left behind:", described);
  }

 private:
  int fds_;
};

}  // namespace herd_test
