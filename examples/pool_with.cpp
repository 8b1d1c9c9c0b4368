// Python's `with Pool(processes=4) as pool:` tour, in a plain main with no event loop of its
// own: the pool runs one on an internal thread, and the blocking forms wait like Python's.
#include <herd/herd.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

int f(int x) { return x * x; }
void nap(int seconds) { std::this_thread::sleep_for(std::chrono::seconds(seconds)); }

int main() {
  // [snippet:with]
  herd::pool pool({.processes = 4});  // the destructor terminates, like leaving `with`

  std::cout << pool.submit(f, 10).get(1s) << "\n";  // apply_async(f, (10,)).get(timeout=1)

  std::vector<int> xs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int y : pool.map(f, xs)) std::cout << y << " ";  // map(f, range(10))
  std::cout << "\n";

  auto it = pool.imap(f, xs);  // imap: stepped one result at a time
  std::cout << *it.next() << " " << *it.next() << " " << *it.next(1s) << "\n";

  auto slow = pool.submit(nap, 10);  // apply_async(time.sleep, (10,)).get(timeout=1)
  try {
    slow.get(1s);
  } catch (const boost::system::system_error& e) {
    std::cout << "timed out: " << (e.code() == herd::errc::timed_out) << "\n";
  }
  std::cout << "still usable: " << pool.apply(f, 12) << "\n";
  // [/snippet]
}
