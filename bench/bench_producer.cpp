// Writes N bytes to stdout in 1 MiB writes, as fast as the pipe takes them.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

int main(int argc, char** argv) {
  long long left = argc > 1 ? std::atoll(argv[1]) : 0;
  static char block[1 << 20];
  std::memset(block, 'x', sizeof block);
  while (left > 0) {
    const long long want = left < static_cast<long long>(sizeof block) ? left : static_cast<long long>(sizeof block);
    const ssize_t n = ::write(1, block, static_cast<size_t>(want));
    if (n < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    left -= n;
  }
  return 0;
}
