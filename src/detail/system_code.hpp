// An errno value as an error_code of the system category: what herd's compiled operations
// report when a system call fails.
#pragma once

#include <herd/config.hpp>

#include <boost/system/error_code.hpp>

namespace herd::detail {

inline error_code system_code(int value) noexcept { return {value, boost::system::system_category()}; }

}  // namespace herd::detail
