// herd_test_child: the program herd's tests launch. One mode per behaviour a test needs.
//   exit N                 exit with code N
//   sleep MS               sleep, then exit 0
//   echo                   copy stdin to stdout until EOF
//   count-stdin            read stdin to EOF, print the number of bytes
//   write-out N | write-err N   write N bytes ('a'..'z' repeating) to stdout | stderr
//   write-both N           write N bytes to stdout and N to stderr, interleaved
//   lines N                print "line 1" … "line N"
//   print-env NAME         print the variable's value, or <unset>
//   print-cwd              print the working directory
//   print-args A…          print each argument on its own line
//   print-pgid             print "pid pgid"
//   ignore-sigterm         ignore SIGTERM, print "ready", sleep forever
//   graceful-sigterm N     on SIGTERM exit with code N; print "ready", sleep forever
//   grandchild MS          fork a grandchild sleeping 100 s, print its pid, sleep MS, exit 0
//   grandchild-setsid MS   the same, but the grandchild leaves the group (setsid) and holds stdout
//   kill-self SIG          raise signal SIG
//   signal-mask            print the blocked signals and the disposition of SIGPIPE
//   stdin-eof              print "ready", then "eof" once stdin is at EOF (for close_stdin)
//   list-fds               print the open descriptors, space separated
//   count-rt               count SIGRTMIN deliveries; print "ready"; on SIGTERM print the count, exit 0
//   grandchild-setsid-writer   a grandchild leaves the group and writes to stdout forever
//   write-forever          write to stdout until killed
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <fcntl.h>
#include <unistd.h>

namespace {

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::exit(3);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

void write_pattern(int fd, long long total) {
  static char block[1 << 20];
  for (std::size_t i = 0; i < sizeof block; ++i) block[i] = static_cast<char>('a' + i % 26);
  while (total > 0) {
    const std::size_t n = total < static_cast<long long>(sizeof block) ? static_cast<std::size_t>(total) : sizeof block;
    write_all(fd, block, n);
    total -= static_cast<long long>(n);
  }
}

void say(const std::string& line) {
  std::string text = line + "\n";
  write_all(1, text.data(), text.size());
}

[[noreturn]] void sleep_forever() {
  for (;;) pause();
}

volatile sig_atomic_t rt_count = 0;
void on_rt(int) { rt_count = rt_count + 1; }
void on_term_print_count(int) {
  char text[32];
  int n = snprintf(text, sizeof text, "%d\n", static_cast<int>(rt_count));
  if (write(1, text, static_cast<size_t>(n)) < 0) _exit(3);
  _exit(0);
}

void on_term_exit(int) { _exit(std::atoi(std::getenv("HERD_TEST_TERM_CODE"))); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 100;
  const std::string mode = argv[1];
  const char* arg = argc > 2 ? argv[2] : "0";

  if (mode == "exit") return std::atoi(arg);
  if (mode == "sleep") {
    usleep(static_cast<useconds_t>(std::atoll(arg) * 1000));
    return 0;
  }
  if (mode == "echo" || mode == "count-stdin") {
    static char buffer[1 << 16];
    long long total = 0;
    for (;;) {
      ssize_t n = ::read(0, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      total += n;
      if (mode == "echo") write_all(1, buffer, static_cast<std::size_t>(n));
    }
    if (mode == "count-stdin") say(std::to_string(total));
    return 0;
  }
  if (mode == "write-out") return write_pattern(1, std::atoll(arg)), 0;
  if (mode == "write-err") return write_pattern(2, std::atoll(arg)), 0;
  if (mode == "write-both") {
    long long left = std::atoll(arg);
    while (left > 0) {
      const long long n = left < 65536 ? left : 65536;
      write_pattern(1, n);
      write_pattern(2, n);
      left -= n;
    }
    return 0;
  }
  if (mode == "lines") {
    for (int i = 1; i <= std::atoi(arg); ++i) say("line " + std::to_string(i));
    return 0;
  }
  if (mode == "print-env") {
    const char* value = std::getenv(arg);
    say(value ? value : "<unset>");
    return 0;
  }
  if (mode == "print-cwd") {
    char cwd[4096];
    say(getcwd(cwd, sizeof cwd) ? cwd : "?");
    return 0;
  }
  if (mode == "print-args") {
    for (int i = 2; i < argc; ++i) say(argv[i]);
    return 0;
  }
  if (mode == "print-pgid") {
    say(std::to_string(getpid()) + " " + std::to_string(getpgrp()));
    return 0;
  }
  if (mode == "ignore-sigterm") {
    std::signal(SIGTERM, SIG_IGN);
    say("ready");
    sleep_forever();
  }
  if (mode == "graceful-sigterm") {
    setenv("HERD_TEST_TERM_CODE", arg, 1);
    std::signal(SIGTERM, on_term_exit);
    say("ready");
    sleep_forever();
  }
  if (mode == "grandchild" || mode == "grandchild-setsid") {
    const pid_t grandchild = fork();
    if (grandchild == 0) {
      if (mode == "grandchild-setsid") setsid();
      else close(1);
      sleep(100);
      _exit(0);
    }
    say(std::to_string(grandchild));
    usleep(static_cast<useconds_t>(std::atoll(arg) * 1000));
    return 0;
  }
  if (mode == "kill-self") {
    std::signal(std::atoi(arg), SIG_DFL);
    raise(std::atoi(arg));
    return 99;
  }
  if (mode == "signal-mask") {
    sigset_t blocked;
    sigprocmask(SIG_SETMASK, nullptr, &blocked);
    int count = 0;
    for (int s = 1; s < NSIG; ++s) count += sigismember(&blocked, s) == 1;
    struct sigaction pipe_action;
    sigaction(SIGPIPE, nullptr, &pipe_action);
    say("blocked " + std::to_string(count) + " sigpipe " + (pipe_action.sa_handler == SIG_DFL ? "default" : "other"));
    return 0;
  }
  if (mode == "stdin-eof") {
    say("ready");
    char c;
    while (::read(0, &c, 1) > 0) {}
    say("eof");
    return 0;
  }
  if (mode == "count-rt") {
    std::signal(SIGRTMIN, on_rt);
    std::signal(SIGTERM, on_term_print_count);
    say("ready");
    sleep_forever();
  }
  if (mode == "write-forever") {
    for (;;) write_pattern(1, 1 << 20);
  }
  if (mode == "grandchild-setsid-writer") {
    const pid_t grandchild = fork();
    if (grandchild == 0) {
      setsid();
      for (;;) write_pattern(1, 1 << 16);
    }
    say(std::to_string(grandchild));
    return 0;
  }
  if (mode == "list-fds") {
    std::string fds;
    for (int fd = 0; fd < 1024; ++fd)
      if (fcntl(fd, F_GETFD) >= 0) fds += (fds.empty() ? "" : " ") + std::to_string(fd);
    say(fds);
    return 0;
  }
  std::fprintf(stderr, "herd_test_child: unknown mode %s\n", mode.c_str());
  return 100;
}
