// What queue<T> and connection<T> share: encoding values for a channel and decoding them in a
// completion that keeps the caller's executor and cancellation slot.
#pragma once

#include <herd/codec.hpp>
#include <herd/config.hpp>
#include <herd/detail/adapted_handler.hpp>
#include <herd/detail/channel.hpp>
#include <herd/detail/chrono.hpp>
#include <herd/error.hpp>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace herd::detail {

template <typename T>
void check_message_type() {
  require_encodable<T>();  // if T cannot travel, herd::codec's static_assert says why
  static_assert(std::is_default_constructible_v<T>, "herd: message types must be default-constructible");
}

/// The typed operations of queues and connections, and the one place they reach the channel.
template <typename T>
class typed_channel : public channel_end {
 public:
  using value_type = T;

  typed_channel(executor_type ex, std::shared_ptr<channel> ch) : channel_end(std::move(ex), std::move(ch)) {
    check_message_type<T>();
  }

  template <asio::completion_token_for<void(error_code)> Token>
  auto send_async(const T& value, Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [](auto handler, std::shared_ptr<channel> ch, executor_type ex, outgoing_message message) {
          asio::any_io_executor home = asio::get_associated_executor(handler, ex);
          if (!ch) return asio::post(home, asio::append(std::move(handler), error_code(errc::closed)));
          ch->async_send_erased(home, std::move(message), std::move(handler));
        },
        token, channel_, executor_, encode(value));
  }

  template <asio::completion_token_for<void(error_code, T)> Token>
  auto receive_async(Token&& token) {
    return asio::async_initiate<Token, void(error_code, T)>(
        [](auto handler, std::shared_ptr<channel> ch, executor_type ex) {
          asio::any_io_executor home = asio::get_associated_executor(handler, ex);
          if (!ch) return asio::post(home, asio::append(std::move(handler), error_code(errc::closed), T{}));
          // A message (or an error) already here completes through one deferred call on this
          // thread's queue, with no type-erased handler and no wait: a consumer that drains a
          // backlog pays only this per message.
          T value{};
          if (error_code ec = ch->try_receive(decode_into(value)); ec != errc::would_block)
            return asio::defer(home, asio::append(std::move(handler), ec, std::move(value)));  // T{} on an error
          ch->async_receive_erased(home, adapt(std::move(handler), [ch](auto&& h, error_code ec,
                                                                         received_message message) {
                                     T value{};
                                     if (!ec) ec = decode(message.bytes(), value);
                                     ch->recycle(std::move(message));
                                     std::move(h)(ec, ec ? T{} : std::move(value));
                                   }));
        },
        token, channel_, executor_);
  }

  /// joinable_queue's join.
  template <asio::completion_token_for<void(error_code)> Token>
  auto join_async(Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [](auto handler, std::shared_ptr<channel> ch, executor_type ex) {
          asio::any_io_executor home = asio::get_associated_executor(handler, ex);
          if (!ch) return asio::post(home, asio::append(std::move(handler), error_code(errc::closed)));
          ch->async_join_erased(home, std::move(handler));
        },
        token, channel_, executor_);
  }

  error_code send_blocking(const T& value, std::optional<std::chrono::milliseconds> timeout, bool block) {
    if (!channel_) return errc::closed;
    return channel_->send(encode(value), timeout, block);
  }

  /// On an error `out` is untouched; an undecodable message is errc::bad_message (it is gone,
  /// the channel is fine).
  error_code receive_blocking(T& out, std::optional<std::chrono::milliseconds> timeout, bool block) {
    if (!channel_) return errc::closed;
    return channel_->receive(decode_into(out), timeout, block);
  }

 private:
  // Large messages go into their memfd as they are encoded (see outgoing_message).
  outgoing_message encode(const T& value) const {
    return outgoing_message::encode(value, channel_ ? channel_->memory_limit() : std::size_t(-1));
  }

  // `out` changes only on success; errc::bad_message for bytes that do not decode.
  static error_code decode(std::string_view bytes, T& out) {
    try {
      out = herd::decode<T>(bytes);
    } catch (const boost::system::system_error& e) {
      return e.code();
    }
    return {};
  }

  // Decodes a message straight from the channel's buffer.
  static message_sink decode_into(T& out) noexcept {
    return {[](void* context, std::string_view bytes, received_message*) {
              return decode(bytes, *static_cast<T*>(context));
            },
            &out};
  }
};

}  // namespace herd::detail
