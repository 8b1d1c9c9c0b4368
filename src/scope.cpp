#include <herd/scope.hpp>

#include "detail/core_access.hpp"
#include "detail/function_process.hpp"
#include "detail/program_process.hpp"
#include "detail/post_completion.hpp"

namespace herd {

std::shared_ptr<detail::process_core> detail::core_access::of(const process_base& p) { return p.state_; }
std::shared_ptr<detail::process_core> detail::core_access::of(const child& c) { return c.impl_; }

scope::scope(const executor_type& ex) : executor_(ex) {}

scope::~scope() {
  for (auto& member : members_)
    if (!member->try_reap()) member->begin_stop(exit_reason::stopped);
}

void scope::adopt(const process_base& p) {
  std::erase_if(members_, [](const auto& member) { return member->try_reap(); });
  members_.push_back(detail::core_access::of(p));
}

child scope::spawn(const command& cmd) {
  child c(executor_, cmd);
  std::erase_if(members_, [](const auto& member) { return member->try_reap(); });
  members_.push_back(detail::core_access::of(c));
  return c;
}

std::size_t scope::running() {
  std::size_t count = 0;
  for (auto& member : members_) count += !member->try_reap();
  return count;
}

void scope::close_impl(asio::any_completion_handler<void(error_code)> handler) {
  std::vector<std::shared_ptr<detail::process_core>> closing;
  closing.swap(members_);
  std::erase_if(closing, [](const auto& member) { return member->try_reap(); });
  if (closing.empty()) return detail::post_completion(executor_, std::move(handler), error_code());

  // One countdown for all of them; the last reaped child completes the close.
  struct countdown {
    std::size_t left;
    asio::any_completion_handler<void(error_code)> handler;
    asio::any_io_executor executor;
  };
  auto shared = std::make_shared<countdown>(countdown{closing.size(), std::move(handler), executor_});
  for (auto& member : closing) {
    member->begin_stop(exit_reason::stopped);
    member->wait([shared](error_code, exit_status) {
      if (--shared->left == 0) detail::post_completion(shared->executor, std::move(shared->handler), error_code());
    });
  }
}

}  // namespace herd
