// The one way into a handle's state from outside it: scopes adopt the process_core of the
// function children and programs started through them.
#pragma once

#include <herd/child.hpp>
#include <herd/process.hpp>

#include "process_core.hpp"

#include <memory>

namespace herd::detail {


struct core_access {
  static std::shared_ptr<process_core> of(const process_base& p);
  static std::shared_ptr<process_core> of(const child& c);
};

}  // namespace herd::detail
