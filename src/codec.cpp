#include <herd/codec.hpp>

namespace herd {

void decoder::fail(const char* what) {
  throw boost::system::system_error(errc::bad_message, std::string("herd: cannot decode a message: ") + what);
}

}  // namespace herd
