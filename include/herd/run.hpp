/// @file herd/run.hpp
/// `herd::async_run` and `herd::async_run_pipeline`: run programs to completion, feeding their
/// stdin and capturing their output, like Python's `subprocess.run` but awaitable.
#pragma once

#include <herd/command.hpp>
#include <herd/config.hpp>
#include <herd/detail/chrono.hpp>
#include <herd/detail/described.hpp>
#include <herd/exit_status.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

namespace herd {

/// Options of async_run and async_run_pipeline.
struct run_options {
  /// Stop the program(s) with their stop policy after this long; the operation then
  /// completes with `errc::timed_out` and the final status (reason `timed_out`).
  std::optional<std::chrono::milliseconds> timeout{};
  /// Treat an unsuccessful exit as an error: `errc::child_exited` (non-zero code) or
  /// `errc::child_killed` (signal). The result is delivered either way.
  bool check = false;
};

/// What async_run delivers.
struct run_result {
  exit_status status;
  /// Everything the program wrote to stdout, if stdout was a pipe (the default).
  std::string std_out;
  /// Everything the program wrote to stderr, if stderr was a pipe (the default).
  std::string std_err;
  /// For messages: the command, its pid and how it ended ("'sleep 100' (pid 42) killed by …").
  std::string description;

  bool success() const noexcept { return status.success(); }
};

/// What async_run_pipeline delivers.
struct run_pipeline_result {
  /// One status per stage, in order.
  std::vector<exit_status> statuses;
  /// What the last stage wrote to stdout, if it was a pipe (the default).
  std::string std_out;
  /// What each stage wrote to stderr (where stderr was a pipe, the default).
  std::vector<std::string> std_err;
  std::string description;

  /// The pipeline's status as `set -o pipefail` defines it: the rightmost stage that did not
  /// succeed, or the last stage if all did.
  exit_status status() const noexcept;
  bool success() const noexcept { return status().success(); }
};

namespace detail {
void async_run_erased(const asio::any_io_executor& ex, const command& cmd, const run_options& options,
                      asio::any_completion_handler<void(error_code, run_result)> handler);
void async_run_pipeline_erased(const asio::any_io_executor& ex, const std::vector<command>& stages,
                               const run_options& options,
                               asio::any_completion_handler<void(error_code, run_pipeline_result)> handler);
}  // namespace detail

/// Runs `cmd` to completion. Unless the command says otherwise, stdin is /dev/null and stdout
/// and stderr are captured (`stdio::bytes` feeds stdin). Stdin is fed while stdout and stderr
/// are drained, so large inputs and outputs never deadlock.
///
/// @par Completion signature `void(error_code, run_result)`. The error is empty when the
///   program ran, whatever its exit code (see `run_options::check`); otherwise it is
///   `errc::program_not_found`, `bad_working_directory`, `bad_stdio`, `spawn_failed`,
///   `timed_out` or `operation_aborted`, and `run_result::description` says more.
///   With the default token a failure throws `boost::system::system_error` whose `what()`
///   starts with that description (the program, the PATH searched, the exit code…) and whose
///   `code()` is the error; use `asio::as_tuple(asio::deferred)` to receive the result along
///   with an error instead.
/// @par Cancellation terminal, partial, total: the program is stopped with its stop policy;
///   the operation completes with `operation_aborted` and the final status (reason `cancelled`).
/// @par Example
/// @code
/// auto result = co_await herd::async_run(ex, herd::command("uname", {"-s"}));
/// std::cout << result.std_out;
/// @endcode
template <asio::completion_token_for<void(error_code, run_result)> Token = detail::described_deferred_t>
auto async_run(const asio::any_io_executor& ex, command cmd, run_options options, Token&& token = {}) {
  return asio::async_initiate<Token, void(error_code, run_result)>(
      [](auto handler, const asio::any_io_executor& e, const command& c, const run_options& o) {
        detail::async_run_erased(e, c, o, std::move(handler));
      },
      token, ex, std::move(cmd), std::move(options));
}

/// async_run with default options.
template <asio::completion_token_for<void(error_code, run_result)> Token = detail::described_deferred_t>
auto async_run(const asio::any_io_executor& ex, command cmd, Token&& token = {}) {
  return herd::async_run(ex, std::move(cmd), run_options{}, std::forward<Token>(token));
}

/// Runs `stages` as a pipeline (`a | b | c`): each stage's stdout is connected to the next
/// stage's stdin by a kernel pipe, so the bytes never pass through the parent. The first
/// stage's stdin and the last stage's stdout follow async_run's defaults; stderr of every
/// stage is captured unless its command says otherwise.
///
/// @par Completion signature `void(error_code, run_pipeline_result)`; with `check`, a failed
///   pipeline (pipefail) completes with `errc::child_exited` or `errc::child_killed`.
/// @par Cancellation terminal, partial, total: every stage is stopped with its stop policy.
template <asio::completion_token_for<void(error_code, run_pipeline_result)> Token = detail::described_deferred_t>
auto async_run_pipeline(const asio::any_io_executor& ex, std::vector<command> stages, run_options options,
                        Token&& token = {}) {
  return asio::async_initiate<Token, void(error_code, run_pipeline_result)>(
      [](auto handler, const asio::any_io_executor& e, const std::vector<command>& s, const run_options& o) {
        detail::async_run_pipeline_erased(e, s, o, std::move(handler));
      },
      token, ex, std::move(stages), std::move(options));
}

/// async_run_pipeline with default options.
template <asio::completion_token_for<void(error_code, run_pipeline_result)> Token = detail::described_deferred_t>
auto async_run_pipeline(const asio::any_io_executor& ex, std::vector<command> stages, Token&& token = {}) {
  return herd::async_run_pipeline(ex, std::move(stages), run_options{}, std::forward<Token>(token));
}

/// Options of async_run_all.
struct run_all_options {
  /// Programs running at once, at most (0: `herd::cpu_count()`).
  std::size_t concurrency = 0;
  /// How each program is run (its timeout; `check` makes an unsuccessful exit its error).
  run_options each{};
};

/// One program's outcome in async_run_all: `error` is empty when it ran (see
/// run_options::check), else why not (`program_not_found`, `timed_out`, …), and `result` has
/// its status, output and description either way.
struct run_all_item {
  error_code error;
  run_result result;
};

/// Runs every command, at most `options.concurrency` at once, as `xargs -P` and GNU parallel
/// do; the outcomes come back in input order, one per command, each with its own error: one
/// failing does not stop the others.
/// @par Cancellation terminal, partial, total: every running program is stopped by its stop
///   policy, none is started after; throws `operation_aborted` once they have ended.
asio::awaitable<std::vector<run_all_item>> async_run_all(const asio::any_io_executor& ex, std::vector<command> commands,
                                                         run_all_options options = {});

}  // namespace herd
