// The compiled core of herd's synchronization primitives (src/sync.cpp): state in a page of
// memory shared with every process forked after it, waits on futexes in that page. The classes of
// herd/sync.hpp are thin handles over it.
#pragma once

#include <herd/config.hpp>
#include <herd/detail/chrono.hpp>

#include <boost/asio/any_completion_handler.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace herd::detail {

enum class sync_kind : std::uint8_t { lock, rlock, semaphore, bounded_semaphore, event, condition, barrier };

class sync_core;

/// No timeout: wait for ever. The deadline is taken in src/ (its clock arithmetic is not every
/// includer's business).
using sync_timeout = std::optional<std::chrono::milliseconds>;

/// `value`: a semaphore's initial value (also a bounded one's maximum), a barrier's parties;
/// errc::invalid_argument (naming it) for a barrier of no party or a value above 2^32 - 1.
std::shared_ptr<sync_core> make_sync_core(sync_kind kind, std::size_t value);

/// lock, rlock, semaphores, and a condition's lock. Success, errc::owner_died (the caller holds
/// it now), errc::timed_out, errc::would_block (not `block`).
error_code sync_acquire(sync_core& core, sync_timeout timeout, bool block) noexcept;
/// errc::not_owner; errc::invalid_argument for a bounded semaphore released above its value.
error_code sync_release(sync_core& core) noexcept;

/// Event: wait until set. Condition: release the lock, wait for a notify, take the lock again.
/// Barrier: wait for all parties (`index` is this caller's, 0 to parties - 1).
/// errc::timed_out, errc::not_owner (condition), errc::broken_barrier.
error_code sync_wait(sync_core& core, sync_timeout timeout, std::size_t& index) noexcept;

void event_set(sync_core& core) noexcept;
void event_clear(sync_core& core) noexcept;
/// errc::not_owner if the caller does not hold the condition's lock.
error_code condition_notify(sync_core& core, std::size_t count, bool all) noexcept;
void barrier_reset(sync_core& core) noexcept;
void barrier_abort(sync_core& core) noexcept;

struct sync_status {
  int owner = 0;             ///< lock, rlock, condition: the holding process, 0 if free
  std::uint32_t value = 0;   ///< semaphore value; rlock depth; event 1 if set; barrier parties
  std::uint32_t waiting = 0; ///< barrier: parties waiting now; event: waits in progress
  bool broken = false;       ///< barrier
};
sync_status sync_query(const sync_core& core) noexcept;

enum class sync_operation : std::uint8_t { acquire, wait };
/// The awaitable forms of sync_acquire and sync_wait. Completes on `home` with the error code and
/// the barrier index (errc::not_running without a core: a moved-from handle); cancellation (any type) completes with operation_aborted and leaves the
/// primitive as if the call had not been made, except that a condition's wait takes its lock
/// again first and a barrier's breaks the barrier.
void async_sync_erased(std::shared_ptr<sync_core> core, sync_operation operation, const asio::any_io_executor& home,
                asio::any_completion_handler<void(error_code, std::size_t)> handler);

/// Memory shared with every process forked after it (MAP_SHARED | MAP_ANONYMOUS), zeroed; freed
/// in this process when the last pointer goes.
std::shared_ptr<void> allocate_shared_memory(std::size_t bytes);

}  // namespace herd::detail
