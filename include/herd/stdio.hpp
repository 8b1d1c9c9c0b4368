/// @file herd/stdio.hpp
/// `herd::stdio`: where a child's standard stream goes — inherited, /dev/null, a pipe, a file, a
/// descriptor, bytes for stdin, or stderr into stdout. Programs (`herd::command`) and function
/// children (`herd::process_options`) take it alike.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace herd {

/// Where one of a child's standard streams goes.
class stdio {
 public:
  enum class kind : std::uint8_t {
    unset,      ///< the default of the operation: async_run pipes, child inherits
    inherit,    ///< the parent's own stream
    null,       ///< /dev/null
    pipe,       ///< a pipe to the parent (captured by async_run; a stream of herd::child)
    file,       ///< a file, opened by herd before the launch
    fd,         ///< a descriptor of the parent's (borrowed; must stay open until the launch)
    bytes,      ///< stdin only: these bytes, then end of file
    to_stdout,  ///< stderr only: wherever stdout goes (`2>&1`)
  };

  stdio() = default;
  static stdio inherit() { return stdio(kind::inherit); }
  static stdio null() { return stdio(kind::null); }
  static stdio pipe() { return stdio(kind::pipe); }
  /// A file: read for stdin; for stdout and stderr created, and truncated unless `append`.
  /// A `std::filesystem::path` converts to the string.
  static stdio file(std::string path, bool append = false) {
    stdio s(kind::file);
    s.path_ = std::move(path);
    s.append_ = append;
    return s;
  }
  static stdio fd(int descriptor) {
    stdio s(kind::fd);
    s.fd_ = descriptor;
    return s;
  }
  static stdio bytes(std::string data) {
    stdio s(kind::bytes);
    s.data_ = std::move(data);
    return s;
  }
  static stdio to_stdout() { return stdio(kind::to_stdout); }

  kind type() const noexcept { return kind_; }
  const std::string& path() const noexcept { return path_; }
  bool append() const noexcept { return append_; }
  int descriptor() const noexcept { return fd_; }
  const std::string& data() const noexcept { return data_; }

 private:
  explicit stdio(kind k) : kind_(k) {}
  kind kind_ = kind::unset;
  bool append_ = false;
  int fd_ = -1;
  std::string path_;
  std::string data_;
};

}  // namespace herd
