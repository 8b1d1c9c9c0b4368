// Function children started by spawn or the forkserver: what travels to them (the call, encoded,
// in a memfd), how their standard streams are handed over (as descriptors the parent opened), and
// the child's side, from herd::init or the forkserver's fork to _exit.
#include "detail/code_ref.hpp"
#include "detail/descriptors.hpp"
#include "detail/fork_child.hpp"
#include "detail/fork_lock.hpp"
#include "detail/function_process.hpp"
#include "detail/spawn_process.hpp"
#include "detail/travelling_child.hpp"
#include "detail/unique_fd.hpp"

#include <herd/detail/travelling_call.hpp>
#include <herd/process.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace herd::detail {
namespace {

// Descriptors of a function child after its outcome channel (3): the call, then its stdio.
constexpr int payload_fd = spawned_first_fd;
constexpr int first_stdio_fd = spawned_first_fd + 1;

const char* stream_name(int target) { return target == 0 ? "stdin" : target == 1 ? "stdout" : "stderr"; }

// The descriptor the child's stream `target` becomes, opened here so that a bad file is reported
// to the caller, naming it. Unset or inherit: this process's own stream at the time of the start.
unique_fd stdio_descriptor(int target, const stdio& s, const std::string& name) {
  int fd = -1;
  std::string what;
  switch (s.type()) {
    case stdio::kind::null:
      what = "/dev/null";
      fd = ::open("/dev/null", (target == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
      break;
    case stdio::kind::file:
      what = s.path();
      fd = ::open(s.path().c_str(),
                  (target == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | (s.append() ? O_APPEND : O_TRUNC))) | O_CLOEXEC, 0666);
      break;
    case stdio::kind::fd:
      what = "descriptor " + std::to_string(s.descriptor());
      fd = ::fcntl(s.descriptor(), F_DUPFD_CLOEXEC, 3);
      break;
    default:  // unset, inherit
      fd = ::fcntl(target, F_DUPFD_CLOEXEC, 3);
      // A stream this process has closed stays empty in the child: /dev/null.
      if (fd < 0 && errno == EBADF) return stdio_descriptor(target, stdio::null(), name);
      what = std::string("this process's ") + stream_name(target);
      break;
  }
  if (fd < 0)
    throw boost::system::system_error(errc::bad_stdio, "herd: cannot start '" + name + "': cannot open " + what +
                                                           " for its " + stream_name(target) + ": " +
                                                           std::strerror(errno));
  return unique_fd(fd);
}

const char* method_name(herd::start_method method) {
  return method == herd::start_method::spawn        ? "spawn"
         : method == herd::start_method::forkserver ? "forkserver"
                                                     : "fork";
}

}  // namespace

unique_fd call_memory(const std::string& bytes, const std::string& what) {
  unique_fd memory(static_cast<int>(::syscall(SYS_memfd_create, "herd-call", MFD_CLOEXEC)));
  std::size_t written = 0;
  while (memory && written < bytes.size()) {
    const ssize_t n = ::write(memory.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      memory.reset();
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (!memory)
    throw boost::system::system_error(errc::spawn_failed,
                                      "herd: cannot start '" + what + "': memfd for its call: " + std::strerror(errno));
  return memory;
}

std::string read_call_memory(int fd) {
  std::string bytes;
  if (const auto size = file_size(fd)) {
    bytes.resize(*size);
    if (!read_whole(fd, bytes.data(), *size)) bytes.clear();
  }
  return bytes;
}

void run_child_call(const child_call& call, const address_map& addresses, std::string& out) {
  const std::uint64_t entry = addresses.translate(call.entry);
  const std::uint64_t callable = call.callable != 0 ? addresses.translate(call.callable) : 0;
  reinterpret_cast<task_entry>(static_cast<std::uintptr_t>(entry))(callable, call.args, out);
}

std::string function_child_role(const function_child_start& start) {
  return "function-child " + std::to_string(start.parent) + " " + (start.die_with_parent ? "1" : "0") + " " +
         (start.daemon ? "1" : "0") + " " + start.name;
}

bool parse_function_child_role(std::string_view role, function_child_start& start) {
  const std::string text(role);
  int die = 0, daemon = 0, name_at = 0;
  if (std::sscanf(text.c_str(), "function-child %d %d %d %n", &start.parent, &die, &daemon, &name_at) != 3 ||
      name_at <= 0 || start.parent <= 0 || (die != 0 && die != 1) || (daemon != 0 && daemon != 1))
    return false;
  start.die_with_parent = die == 1;
  start.daemon = daemon == 1;
  start.name = text.substr(static_cast<std::size_t>(name_at));
  return true;
}

std::string encode_child_call(const travelling_call& call, const std::vector<std::pair<std::string, std::string>>& env) {
  std::string out;
  encoder e(out);
  e.value(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(call.entry)));
  e.value(call.callable);
  e.value(call.args);
  e.value(env);
  return out;
}

child_call decode_child_call(std::string_view bytes) {
  decoder d(bytes);
  child_call call;
  call.entry = d.value<std::uint64_t>();
  call.callable = d.value<std::uint64_t>();
  call.args = d.value<std::string>();
  call.env = d.value<std::vector<std::pair<std::string, std::string>>>();
  if (d.remaining() != 0) decoder::fail("bytes are left over after a function child's call");
  return call;
}

herd::start_method start_method_of(const process_options& options) noexcept {
  return options.start_method.value_or(get_start_method());
}

std::shared_ptr<function_process> start_travelling(const asio::any_io_executor& ex, const process_options& options,
                                                   herd::start_method method, const std::type_info& function_type,
                                                   const void* function_address, const travelling_call& call) {
  process_options named = options;
  named.name = checked_child_name(options, function_type, function_address);
  const std::string role = function_child_role({::getpid(), named.die_with_parent, named.daemon, named.name});
  std::vector<unique_fd> handed;
  handed.push_back(call_memory(encode_child_call(call, options.env), named.name));
  const stdio* streams[3] = {&options.std_in, &options.std_out, &options.std_err};
  for (int target = 0; target < 3; ++target) handed.push_back(stdio_descriptor(target, *streams[target], named.name));
  spawn_request request{role, {}};
  for (const unique_fd& fd : handed) request.descriptors.push_back(fd.get());
  return start_role_process(ex, named, function_type, function_address, request, method);
}

void throw_cannot_travel(herd::start_method method, const std::type_info& function_type, const void* function_address,
                         const char* why) {
  throw boost::system::system_error(errc::invalid_argument,
                                    std::string("herd::start: '") + describe_function(function_type, function_address) +
                                        "' cannot run in a child started by " + method_name(method) + ": " + why +
                                        " (or start it with process_options::start_method = start_method::fork)");
}

[[noreturn]] void run_function_child_role(std::string_view role, const address_map& addresses) noexcept {
  static function_child_start start;  // this_process::name() points into it for the child's life
  if (!parse_function_child_role(role, start)) {
    std::fprintf(stderr, "herd: a spawned function child cannot read its role '%.*s'\n", static_cast<int>(role.size()),
                 role.data());
    std::_Exit(1);
  }
  // As a forked child's: default dispositions, whatever the program's start installed.
  reset_signals_in_child();
  if (start.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::getppid() != start.parent) std::_Exit(1);  // the parent died before the flag was set
  }
  for (int target = 0; target < 3; ++target)
    if (::dup2(first_stdio_fd + target, target) != target) std::_Exit(1);
  const std::string bytes = read_call_memory(payload_fd);
  ::syscall(SYS_close_range, static_cast<unsigned>(payload_fd), static_cast<unsigned>(first_stdio_fd + 2), 0u);
  fork_state().process_name = &start.name;
  fork_state().daemon = start.daemon;
  auto body = [&](result_sink& sink) {
    // What fails here (a garbled call, another build's code) is the child's exception, reported
    // to the parent like one its function threw.
    child_call call = decode_child_call(bytes);
    for (const auto& [key, value] : call.env) ::setenv(key.c_str(), value.c_str(), 1);
    std::string out;
    run_child_call(call, addresses, out);
    sink.send_value(out);
  };
  finish_child(spawned_channel_fd, child_body(body));
}

}  // namespace herd::detail
