// The state of one function child: the watched process, plus the channel its outcome comes back
// on and what it runs.
#pragma once

#include <herd/process.hpp>

#include "process_core.hpp"

#include <cerrno>
#include <optional>
#include <string>
#include <typeinfo>
#include <unistd.h>

namespace herd::detail {

struct function_process : process_core {
  // Prepared before the fork; attach() it to the child afterwards.
  function_process(const asio::any_io_executor& ex, std::string name, const process_options& options,
                   const std::type_info& function_type, const void* function_address, int channel_fd)
      : process_core(ex, std::move(name), options.stop, false),
        function_type(&function_type),
        function_address(function_address),
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

  /// What the child runs, described on first use.
  const std::string& function() const {
    if (!function_description) function_description = describe_function(*function_type, function_address);
    return *function_description;
  }

  const std::type_info* function_type;
  const void* function_address;
  mutable std::optional<std::string> function_description;
  bool daemon;
  asio::posix::stream_descriptor channel;
  std::string received;
};

}  // namespace herd::detail
