// A function stage runs in worker processes: a lambda with captures cannot go there, and the
// error says so and what to use instead.
#include <herd/pipeline.hpp>

#include <vector>

void build(const boost::asio::any_io_executor& ex) {
  const int offset = 3;
  auto p = herd::from_range(ex, std::vector<int>{1}).map("shift", [offset](int x) { return x + offset; });
  (void)p;
}
