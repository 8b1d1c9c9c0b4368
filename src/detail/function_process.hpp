// The state of one function child: the watched process, plus the channel its outcome comes back
// on and what it runs.
#pragma once

#include <herd/process.hpp>

#include "process_core.hpp"

#include <cerrno>
#include <unistd.h>

namespace herd::detail {

struct function_process : process_core {
  function_process(const asio::any_io_executor& ex, std::string name, int pid, unique_fd& pidfd,
                   const process_options& options, std::string function_name, int channel_fd)
      : process_core(ex, std::move(name), pid, pidfd, options.stop, false),
        function(std::move(function_name)),
        daemon(options.daemon),
        channel(ex, channel_fd) {
    error_code ignored;
    channel.non_blocking(true, ignored);
  }

  // The outcome may be larger than the pipe: read it while the child runs, or the child blocks
  // in write() and never ends.
  void read_channel() {
    if (!channel.is_open()) return;
    channel.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = std::static_pointer_cast<function_process>(shared_from_this())](error_code ec) {
                         if (ec) return;
                         if (self->drain_channel()) self->read_channel();
                       });
  }

  // Reads what is there without blocking; false once nothing more can come.
  bool drain_channel() {
    if (!channel.is_open()) return false;
    char buffer[64 * 1024];
    for (;;) {
      const ssize_t n = ::read(channel.native_handle(), buffer, sizeof buffer);
      if (n > 0) {
        received.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return true;
      close_channel();  // end of file, or an error: nothing more will come
      return false;
    }
  }

  void close_channel() {
    error_code ignored;
    channel.close(ignored);
  }

  // The child wrote everything before it exited; take what the pipe still holds, without
  // waiting for an end of file that a grandchild holding the pipe could delay forever.
  void on_reaped() override {
    drain_channel();
    close_channel();
  }

  int extra_poll_fd() override { return channel.is_open() ? channel.native_handle() : -1; }
  void on_extra_readable() override { drain_channel(); }

  std::string function;
  bool daemon;
  asio::posix::stream_descriptor channel;
  std::string received;
};

}  // namespace herd::detail
