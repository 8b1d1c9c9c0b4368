// herd's one place for its dependency decisions (docs/design/decisions.md: "Boost.Asio").
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/system/error_code.hpp>

namespace herd {

namespace asio = boost::asio;
using boost::system::error_code;

/// The completion token herd's operations use when none is given. Asio 1.26 (Boost 1.81)
/// defaults to `void`, so herd names `deferred` itself: `co_await op()` works.
using default_token = asio::deferred_t;

}  // namespace herd
