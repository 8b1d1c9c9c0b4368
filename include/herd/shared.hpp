/// @file herd/shared.hpp
/// Memory shared between processes: Python's `multiprocessing.Value` and `Array`, and a string of
/// fixed capacity. Create them *before* starting the children that use them (a child sees what
/// was mapped before its fork) and give them to the children; copies of a handle are the same
/// memory. Values are trivially copyable; where `std::atomic_ref<T>` is lock-free, loads, stores
/// and the atomic operations are atomics in shared memory (no lock, no system call), else they
/// take the attached lock, like Python's synchronized wrapper. `get_lock()` is that lock (an rlock,
/// as Python's), for compound updates.
#pragma once

#include <herd/sync.hpp>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace herd {

namespace detail {

// std::ranges::sized_range with convertible elements, from <iterator> alone (<ranges> costs every
// includer a tenth of a second).
template <typename Range, typename T>
concept sized_range_of = requires(Range& r) {
  std::ranges::size(r);
  std::ranges::end(r);
  { *std::ranges::begin(r) } -> std::convertible_to<T>;
};

template <typename T>
void check_shared_type() {
  static_assert(std::is_trivially_copyable_v<T>,
                "herd: shared memory holds trivially copyable types only (their bytes are the value in every process)");
}

template <typename T>
constexpr bool atomic_in_shared_memory = std::atomic_ref<T>::is_always_lock_free;

template <typename T>
constexpr bool arithmetic_value = (std::is_integral_v<T> && !std::is_same_v<T, bool>) || std::is_floating_point_v<T>;

/// Loads and stores of `T` at `p`: atomic where lock-free, else under `guard`.
template <typename T>
struct shared_access {
  static T load(const T* p, const rlock& guard) {
    if constexpr (atomic_in_shared_memory<T>) {
      return std::atomic_ref<T>(*const_cast<T*>(p)).load();
    } else {
      lock_guard<rlock> held(guard);
      return *p;
    }
  }
  static void store(T* p, const T& value, const rlock& guard) {
    if constexpr (atomic_in_shared_memory<T>) {
      std::atomic_ref<T>(*p).store(value);
    } else {
      lock_guard<rlock> held(guard);
      *p = value;
    }
  }
};

}  // namespace detail

/// Python's `multiprocessing.Value`: one `T` in shared memory.
///
/// `v.store(v.load() + 1)` is two steps and races with other processes, as `v.value += 1` does
/// in Python; `v.fetch_add(1)` is one atomic step, and `lock_guard g(v.get_lock()); *v.get() += 1;`
/// (or `v.store(v.load() + 1)` under the guard) one locked step. The lock excludes only those who
/// take it: a bare store() of an atomic `T` from another process does not.
template <typename T>
class shared_value {
 public:
  using executor_type = asio::any_io_executor;
  using value_type = T;
  /// Whether load, store and the atomic operations are lock-free atomics.
  static constexpr bool is_atomic = detail::atomic_in_shared_memory<T>;

  explicit shared_value(const executor_type& ex, const T& initial = T{})
      : memory_(detail::allocate_shared_memory(sizeof(T))), lock_(ex) {
    detail::check_shared_type<T>();
    ::new (memory_.get()) T(initial);
  }

  executor_type get_executor() const noexcept { return lock_.get_executor(); }

  T load() const { return detail::shared_access<T>::load(checked("load"), lock_); }
  void store(const T& value) { detail::shared_access<T>::store(checked("store"), value, lock_); }
  operator T() const { return load(); }
  shared_value& operator=(const T& value) {
    store(value);
    return *this;
  }

  T exchange(const T& value)
    requires is_atomic
  {
    return ref().exchange(value);
  }
  /// Stores `desired` if the value equals `expected`; else loads it into `expected`.
  bool compare_exchange(T& expected, const T& desired)
    requires is_atomic
  {
    return ref().compare_exchange_strong(expected, desired);
  }
  T fetch_add(T delta)
    requires(is_atomic && detail::arithmetic_value<T>)
  {
    return ref().fetch_add(delta);
  }
  T fetch_sub(T delta)
    requires(is_atomic && detail::arithmetic_value<T>)
  {
    return ref().fetch_sub(delta);
  }
  T fetch_and(T bits)
    requires(is_atomic && std::is_integral_v<T> && !std::is_same_v<T, bool>)
  {
    return ref().fetch_and(bits);
  }
  T fetch_or(T bits)
    requires(is_atomic && std::is_integral_v<T> && !std::is_same_v<T, bool>)
  {
    return ref().fetch_or(bits);
  }
  T fetch_xor(T bits)
    requires(is_atomic && std::is_integral_v<T> && !std::is_same_v<T, bool>)
  {
    return ref().fetch_xor(bits);
  }

  /// The lock for compound updates (Python's get_lock(), an rlock as there): load and store take
  /// it themselves when `T` is not atomic, and may while the same thread holds it. A coroutine
  /// that holds it through async_guard() uses get() instead: an awaited hold is not re-entrant.
  rlock& get_lock() const noexcept { return lock_; }
  /// The value in shared memory, unsynchronized (Python's get_obj()): use it under get_lock().
  T* get() const noexcept { return static_cast<T*>(memory_.get()); }

 private:
  std::atomic_ref<T> ref() const { return std::atomic_ref<T>(*checked("an atomic operation")); }
  // A moved-from value has no memory: errc::not_running.
  T* checked(const char* operation) const {
    if (!memory_) detail::throw_error(errc::not_running, std::string("shared_value: ") + operation);
    return get();
  }

  std::shared_ptr<void> memory_;
  mutable rlock lock_;
};

/// Python's `multiprocessing.Array`: a fixed number of `T` in shared memory. Element access
/// through `[]`, iterators and spans is unsynchronized (take get_lock() for compound updates);
/// load, store and fetch_add are atomic per element where `T` allows.
template <typename T>
class shared_array {
 public:
  using executor_type = asio::any_io_executor;
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;
  static constexpr bool is_atomic = detail::atomic_in_shared_memory<T>;

  /// `size` copies of `value` (Python's Array('i', 10)).
  shared_array(const executor_type& ex, std::size_t size, const T& value = T{}) : shared_array(ex, size, uninitialized{}) {
    std::uninitialized_fill_n(data(), size, value);
  }
  /// Python's Array('i', [1, 2, 3]).
  shared_array(const executor_type& ex, std::initializer_list<T> values) : shared_array(ex, values.size(), uninitialized{}) {
    std::uninitialized_copy(values.begin(), values.end(), data());
  }
  /// Python's Array('i', range(10)): the elements of any sized range.
  template <typename Range>
    requires detail::sized_range_of<Range, T>
  shared_array(const executor_type& ex, Range&& values) : shared_array(ex, std::ranges::size(values), uninitialized{}) {
    T* out = data();
    for (auto&& v : values) ::new (out++) T(static_cast<T>(v));
  }

  executor_type get_executor() const noexcept { return lock_.get_executor(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T* data() const noexcept { return static_cast<T*>(memory_.get()); }
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  /// Throws std::out_of_range past the end.
  shared_array(const shared_array&) = default;
  shared_array& operator=(const shared_array&) = default;
  // A moved-from array is empty, and its element accesses report errc::not_running.
  shared_array(shared_array&& other) noexcept
      : memory_(std::move(other.memory_)), size_(std::exchange(other.size_, 0)), lock_(std::move(other.lock_)) {}
  shared_array& operator=(shared_array&& other) noexcept {
    memory_ = std::move(other.memory_);
    size_ = std::exchange(other.size_, 0);
    lock_ = std::move(other.lock_);
    return *this;
  }

  T& at(std::size_t i) const {
    if (!memory_) detail::throw_error(errc::not_running, "shared_array: element access");
    if (i >= size_)
      throw std::out_of_range("herd::shared_array: index " + std::to_string(i) + " is past its " +
                              std::to_string(size_) + " elements");
    return data()[i];
  }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + size_; }

  /// The elements as a span (Python's arr[:] without the copy).
  std::span<T> span() const noexcept { return {data(), size_}; }
  /// `count` elements from `offset` (Python's arr[offset:offset + count]); clipped to the end.
  std::span<T> subspan(std::size_t offset, std::size_t count = std::dynamic_extent) const noexcept {
    if (offset > size_) offset = size_;
    if (count > size_ - offset) count = size_ - offset;
    return span().subspan(offset, count);
  }
  /// A copy taken under get_lock() (Python's arr[:] on a synchronized array).
  std::vector<T> to_vector() const {
    lock_guard<rlock> held(lock_);
    return std::vector<T>(begin(), end());
  }

  T load(std::size_t i) const { return detail::shared_access<T>::load(&at(i), lock_); }
  void store(std::size_t i, const T& value) { detail::shared_access<T>::store(&at(i), value, lock_); }
  T fetch_add(std::size_t i, T delta)
    requires(is_atomic && detail::arithmetic_value<T>)
  {
    return std::atomic_ref<T>(at(i)).fetch_add(delta);
  }
  T fetch_sub(std::size_t i, T delta)
    requires(is_atomic && detail::arithmetic_value<T>)
  {
    return std::atomic_ref<T>(at(i)).fetch_sub(delta);
  }

  rlock& get_lock() const noexcept { return lock_; }

 private:
  struct uninitialized {};
  shared_array(const executor_type& ex, std::size_t size, uninitialized)
      : memory_(detail::allocate_shared_memory((size == 0 ? 1 : size) * sizeof(T))), size_(size), lock_(ex) {
    detail::check_shared_type<T>();
  }

  std::shared_ptr<void> memory_;
  std::size_t size_;
  mutable rlock lock_;
};

/// A string of at most `Capacity` bytes in shared memory (Python's Array('c', n), and what
/// `Value(c_char_p)` is used for). Loads and stores take the attached lock.
template <std::size_t Capacity>
class shared_string {
  static_assert(Capacity > 0, "herd::shared_string needs a capacity of at least one byte");

 public:
  using executor_type = asio::any_io_executor;

  explicit shared_string(const executor_type& ex, std::string_view initial = {})
      : memory_(detail::allocate_shared_memory(sizeof(storage))), lock_(ex) {
    ::new (memory_.get()) storage{};
    store(initial);
  }

  executor_type get_executor() const noexcept { return lock_.get_executor(); }
  static constexpr std::size_t capacity() noexcept { return Capacity; }

  std::string load() const {
    lock_guard<rlock> held(lock_);
    const storage& s = *get();
    return std::string(s.bytes, s.length < Capacity ? s.length : Capacity);
  }
  /// Throws errc::invalid_argument (and stores nothing) if `text` exceeds the capacity.
  void store(std::string_view text) {
    if (text.size() > Capacity)
      throw boost::system::system_error(errc::invalid_argument,
                                        "herd: shared_string: " + std::to_string(text.size()) +
                                            " bytes do not fit its capacity of " + std::to_string(Capacity));
    lock_guard<rlock> held(lock_);
    storage& s = *get();
    std::memcpy(s.bytes, text.data(), text.size());
    s.length = text.size();
  }
  operator std::string() const { return load(); }
  shared_string& operator=(std::string_view text) {
    store(text);
    return *this;
  }

  rlock& get_lock() const noexcept { return lock_; }

 private:
  struct storage {
    std::size_t length;
    char bytes[Capacity];
  };
  storage* get() const noexcept { return static_cast<storage*>(memory_.get()); }

  std::shared_ptr<void> memory_;
  mutable rlock lock_;
};

}  // namespace herd
