// The one place herd includes Boost.Process v2. Under BOOST_ASIO_SEPARATE_COMPILATION its
// launcher header needs throw_error declared first (shared/STYLE.md §7).
#pragma once

#include <boost/asio/detail/throw_error.hpp>
#include <boost/process/v2/environment.hpp>

namespace herd::detail {
namespace process_v2 = boost::process::v2;
}
