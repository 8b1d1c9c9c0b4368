// herd::process: the handle of a function child, its awaitable operations and its outcome, and
// what a process knows about itself (this_process, cpu_count).
#include <herd/process.hpp>

#include "detail/child_registry.hpp"
#include "detail/elf_symbols.hpp"
#include "detail/fork_lock.hpp"
#include "detail/function_process.hpp"
#include "detail/outcome.hpp"
#include "detail/post_completion.hpp"
#include "detail/process_hooks.hpp"

#include <csignal>
#include <cstdlib>
#include <cxxabi.h>
#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

namespace herd {
namespace detail {

namespace {
std::string demangle(const char* name) {
  int ok = -1;
  char* demangled = abi::__cxa_demangle(name, nullptr, nullptr, &ok);
  std::string readable = ok == 0 ? demangled : name;
  std::free(demangled);
  return readable;
}
}  // namespace

std::string describe_function(const std::type_info& type, const void* function_address) {
  if (function_address != nullptr) {
    Dl_info info{};
    if (::dladdr(function_address, &info) != 0 && info.dli_sname != nullptr && info.dli_saddr == function_address)
      return demangle(info.dli_sname);
    // Not exported (no -rdynamic, or a static function): the module's own symbol table knows it.
    if (const auto symbol = function_symbol(function_address)) return demangle(symbol->c_str());
  }
  return demangle(type.name());
}

namespace {
std::string describe_process(const function_process& state) {
  return "herd: process '" + state.name + "' (pid " + std::to_string(state.pid) + ", running " + state.function() +
         ")";
}
}  // namespace

std::exception_ptr outcome_of(const function_process& state, std::string& bytes) {
  const parsed_outcome outcome = parse_outcome(state.received);
  if (outcome.kind == outcome_kind::result) {
    bytes.assign(outcome.bytes);
    return nullptr;
  }
  if (outcome.kind == outcome_kind::exception)
    return std::make_exception_ptr(child_error(std::string(outcome.type), std::string(outcome.message), state.pid,
                                               state.name, state.function()));
  // Described only for a failure (naming the function demangles it).
  const std::string who = describe_process(state);
  const exit_status status = state.status.value_or(exit_status());
  if (outcome.kind == outcome_kind::unreadable)
    return std::make_exception_ptr(boost::system::system_error(errc::bad_message, who + " sent an unreadable outcome"));
  if (status.signaled())
    return std::make_exception_ptr(
        boost::system::system_error(errc::child_killed, who + " ended without a result: " + status.to_string()));
  return std::make_exception_ptr(
      boost::system::system_error(errc::child_exited, who + " ended without a result: " + status.to_string()));
}

boost::system::system_error empty_handle_error() {
  return boost::system::system_error(errc::not_running, "herd::process: the handle is empty (moved from or detached)");
}

void async_join_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                       asio::any_completion_handler<void(error_code, exit_status)> handler) {
  if (!state) return post_completion(ex, std::move(handler), error_code(errc::not_running), exit_status());
  run_process_hooks(process_moment::before_wait);  // the child may be waiting for what this process packed
  state->wait(std::move(handler));
}

void async_stop_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                       asio::any_completion_handler<void(error_code, exit_status)> handler) {
  if (!state) return post_completion(ex, std::move(handler), error_code(errc::not_running), exit_status());
  state->begin_stop(exit_reason::stopped);
  state->wait(std::move(handler));
}

void async_result_erased(const std::shared_ptr<function_process>& state, const asio::any_io_executor& ex,
                          asio::any_completion_handler<void(std::exception_ptr, std::string)> handler) {
  if (!state)
    return post_completion(ex, std::move(handler), std::make_exception_ptr(empty_handle_error()), std::string());
  run_process_hooks(process_moment::before_wait);
  // The slot of `handler` reaches the wait: cancelling stops waiting, nothing else.
  state->wait(adapt(std::move(handler), [state](auto&& h, error_code ec, exit_status) {
    if (ec)
      return std::move(h)(
          std::make_exception_ptr(boost::system::system_error(ec, describe_process(*state) + ": awaiting its result")),
          std::string());
    std::string bytes;
    std::exception_ptr error = outcome_of(*state, bytes);
    std::move(h)(error, std::move(bytes));
  }));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// process_base

namespace {
[[noreturn]] void throw_empty() { throw detail::empty_handle_error(); }
}  // namespace

process_base::process_base(std::shared_ptr<detail::function_process> state) noexcept
    : state_(std::move(state)), executor_(state_ ? state_->executor : executor_type()) {}

process_base::process_base(process_base&& other) noexcept
    : state_(std::move(other.state_)), executor_(other.executor_) {}

process_base& process_base::operator=(process_base&& other) noexcept {
  if (this != &other) {
    process_base discarded(std::move(*this));
    state_ = std::move(other.state_);
    executor_ = other.executor_;
  }
  return *this;
}

process_base::~process_base() {
  if (!state_ || state_->status || state_->try_reap()) return;
  state_->begin_stop(exit_reason::stopped);
}

process_base::executor_type process_base::get_executor() const noexcept { return executor_; }
int process_base::pid() const noexcept { return state_ ? state_->pid : -1; }

const std::string& process_base::name() const noexcept {
  static const std::string none;
  return state_ ? state_->name : none;
}

bool process_base::daemon() const noexcept { return state_ && state_->daemon; }

const std::string& process_base::function() const noexcept {
  static const std::string none;
  return state_ ? state_->function() : none;
}

bool process_base::is_alive() { return state_ && !state_->try_reap(); }

std::optional<int> process_base::exit_code() const noexcept {
  if (!state_ || !state_->status) return std::nullopt;
  return state_->status->python_exitcode();
}

std::optional<exit_status> process_base::status() const noexcept {
  return state_ ? state_->status : std::nullopt;
}

exit_status process_base::join() {
  if (!state_) throw_empty();
  detail::run_process_hooks(detail::process_moment::before_wait);
  state_->join_blocking(std::nullopt);
  return *state_->status;
}

std::optional<exit_status> process_base::join(std::chrono::milliseconds timeout) {
  if (!state_) throw_empty();
  detail::run_process_hooks(detail::process_moment::before_wait);
  if (!state_->join_blocking(timeout)) return std::nullopt;
  return state_->status;
}

void process_base::terminate() {
  if (!state_) throw_empty();
  state_->begin_stop(exit_reason::stopped);
}
void process_base::kill() { signal(SIGKILL); }
void process_base::interrupt() { signal(SIGINT); }
void process_base::signal(int signo) {
  if (!state_) throw_empty();
  state_->signal_group(signo);
}

void process_base::detach() noexcept {
  if (!state_) return;
  // herd keeps only what plain system calls need: the pid and the pidfd. No executor is involved,
  // so the child may outlive this handle's io_context.
  if (!state_->try_reap()) {
    const int pidfd = state_->release_pidfd();
    if (pidfd >= 0) detail::remember_detached(*state_, pidfd);
  }
  state_->close_channel();
  state_.reset();
}

// ---------------------------------------------------------------------------------------------

namespace this_process {
int pid() noexcept { return detail::current_pid(); }
int ppid() noexcept { return ::getppid(); }

const std::string& name() noexcept {
  static const std::string main_name = "main";
  const std::string* process_name = detail::fork_state().process_name;  // set in a fork child (run_child)
  return process_name ? *process_name : main_name;
}

bool is_daemon() noexcept { return detail::fork_state().daemon; }
}  // namespace this_process


unsigned cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1u;
}

}  // namespace herd
