// A program herd launched: the watched process (process_core) plus the parent's ends of its
// stdio pipes. Behind herd::child, async_run and async_run_pipeline; function children have no
// pipes and do not carry them.
#pragma once

#include <herd/command.hpp>
#include <herd/error.hpp>
#include <herd/pipe_stream.hpp>

#include "process_core.hpp"

#include <memory>
#include <optional>
#include <string>

namespace herd::detail {

struct program_process : process_core {
  using process_core::process_core;

  std::optional<pipe_writer> in;
  std::optional<pipe_reader> out;
  std::optional<pipe_reader> err;

 protected:
  void close_stdin() noexcept override {
    if (in) in->close();
  }
};

struct start_result {
  std::shared_ptr<program_process> child;
  error_code error;
  int system_error = 0;  // errno of the failed step
  std::string message;   // names the command and what failed
};

/// Starts the program `cmd` describes, on `ex`. Streams the command leaves unset are inherited.
start_result launch_program(const asio::any_io_executor& ex, const command& cmd);

}  // namespace herd::detail
