// A stage whose function cannot take the previous stage's items does not compile, and says why.
#include <herd/pipeline.hpp>

#include <string>
#include <vector>

int twice(int x) { return 2 * x; }

void build(const boost::asio::any_io_executor& ex) {
  auto p = herd::from_range(ex, std::vector<std::string>{"a"}).map("twice", twice);
  (void)p;
}
