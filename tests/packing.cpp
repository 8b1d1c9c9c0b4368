// The packing policy on its own, without sockets (src/detail/packing.hpp): when a put sends its
// message alone, out of band, or into the pending batch, and when that batch leaves — at the
// batch count, at the 64 KiB packet limit, at the backlog threshold.
#include "detail/packing.hpp"  // first: the header stands alone

#include "detail/framing.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

using herd::detail::backlog_bytes;
using herd::detail::batch_has_room;
using herd::detail::decide_packing;
using herd::detail::max_inline;
using herd::detail::max_packet;
using herd::detail::packing_action;
using herd::detail::packing_inputs;
using herd::detail::record_header;

// A blocking put with pack_puts on a backlogged channel, batch 16, nothing pending yet.
packing_inputs packing_put(std::size_t message_size) {
  packing_inputs in;
  in.message_size = message_size;
  in.batch = 16;
  in.may_pack = true;
  in.socket_backlog = backlog_bytes + 1;
  return in;
}

packing_inputs with_batch(packing_inputs in, std::size_t count, std::size_t bytes) {
  in.batch_count = count;
  in.batch_bytes = bytes;
  return in;
}

// A producer that does what decide_packing says, as channel::state::send_message does, and
// records the packets that leave (messages and bytes each).
struct producer_model {
  std::size_t batch = 16;
  std::size_t backlog = backlog_bytes + 1;
  std::size_t count = 0;
  std::size_t bytes = 0;
  struct packet {
    std::size_t messages;
    std::size_t bytes;
  };
  std::vector<packet> sent;
  std::size_t out_of_band = 0;
  bool measured = false;

  void flush() {
    if (count == 0) return;
    sent.push_back({count, bytes});
    count = bytes = 0;
  }
  void append(std::size_t size) {
    ++count;
    bytes += record_header + size;
  }
  void put(std::size_t size) {
    packing_inputs in;
    in.message_size = size;
    in.batch = batch;
    in.may_pack = true;
    in.batch_count = count;
    in.batch_bytes = bytes;
    packing_action action = decide_packing(in);
    measured = action == packing_action::measure_backlog;
    if (measured) {
      in.socket_backlog = backlog;
      action = decide_packing(in);
    }
    REQUIRE(action != packing_action::measure_backlog);
    switch (action) {
      case packing_action::measure_backlog:
        break;
      case packing_action::send_out_of_band:
        flush();
        ++out_of_band;
        break;
      case packing_action::send_alone:
        flush();
        sent.push_back({1, record_header + size});
        break;
      case packing_action::flush_then_append:
        flush();
        append(size);
        break;
      case packing_action::append:
        append(size);
        break;
      case packing_action::append_then_flush:
        append(size);
        flush();
        break;
    }
  }
};

}  // namespace

TEST_SUITE("packing") {
  TEST_CASE("a message one byte larger than a packet can hold travels out of band whatever is pending") {
    CHECK(decide_packing(packing_put(max_inline + 1)) == packing_action::send_out_of_band);
    CHECK(decide_packing(with_batch(packing_put(max_inline + 1), 3, 30)) == packing_action::send_out_of_band);
    packing_inputs not_packing = packing_put(max_inline + 1);
    not_packing.may_pack = false;
    CHECK(decide_packing(not_packing) == packing_action::send_out_of_band);
    CHECK(herd::detail::travels_out_of_band(max_inline + 1));
    CHECK_FALSE(herd::detail::travels_out_of_band(max_inline));
  }

  TEST_CASE("a message of exactly max_inline bytes fills a packet alone and stays inline") {
    CHECK(record_header + max_inline == max_packet);
    CHECK(decide_packing(packing_put(max_inline)) == packing_action::append);
    // Behind even one empty message it no longer fits: the batch leaves first.
    CHECK(decide_packing(with_batch(packing_put(max_inline), 1, record_header)) == packing_action::flush_then_append);
  }

  TEST_CASE("a put that may not pack sends its message alone after any pending batch") {
    packing_inputs in = with_batch(packing_put(10), 5, 70);
    in.may_pack = false;  // a non-blocking put, or pack_puts off
    CHECK(decide_packing(in) == packing_action::send_alone);
    in.batch_count = 0;
    in.batch_bytes = 0;
    in.socket_backlog.reset();
    CHECK(decide_packing(in) == packing_action::send_alone);  // no need to measure the backlog
  }

  TEST_CASE("a batch of one or zero never packs") {
    CHECK(herd::detail::messages_per_packet(0) == 1);
    CHECK(herd::detail::messages_per_packet(1) == 1);
    CHECK(herd::detail::messages_per_packet(16) == 16);
    for (std::size_t batch : {std::size_t(0), std::size_t(1)}) {
      packing_inputs in = packing_put(10);
      in.batch = batch;
      in.socket_backlog.reset();
      CHECK(decide_packing(in) == packing_action::send_alone);
    }
  }

  TEST_CASE("only a message that could start a batch asks for the backlog") {
    packing_inputs in = packing_put(10);
    in.socket_backlog.reset();
    CHECK(decide_packing(in) == packing_action::measure_backlog);
    // A batch already building takes the message without a look at the socket.
    CHECK(decide_packing(with_batch(in, 1, 14)) == packing_action::append);
  }

  TEST_CASE("packing starts only above the backlog threshold") {
    packing_inputs in = packing_put(10);
    in.socket_backlog = backlog_bytes;
    CHECK(decide_packing(in) == packing_action::send_alone);
    in.socket_backlog = backlog_bytes + 1;
    CHECK(decide_packing(in) == packing_action::append);
    in.socket_backlog = 0;  // SIOCOUTQ failed, or an idle socket
    CHECK(decide_packing(in) == packing_action::send_alone);
    // Once a batch is building, a drained socket does not stop it: the batch fills or is flushed.
    CHECK(decide_packing(with_batch(in, 1, 14)) == packing_action::append);
  }

  TEST_CASE("the message that brings the batch to its count sends it exactly at the count") {
    const std::size_t per_message = record_header + 10;
    CHECK(decide_packing(with_batch(packing_put(10), 14, 14 * per_message)) == packing_action::append);
    CHECK(decide_packing(with_batch(packing_put(10), 15, 15 * per_message)) == packing_action::append_then_flush);
    // A full batch left behind by a flush that would have blocked leaves before the next message.
    CHECK(decide_packing(with_batch(packing_put(10), 16, 16 * per_message)) == packing_action::flush_then_append);
    packing_inputs two = with_batch(packing_put(10), 1, per_message);
    two.batch = 2;
    CHECK(decide_packing(two) == packing_action::append_then_flush);
  }

  TEST_CASE("a message that would take the batch past 64 KiB sends the batch first") {
    const std::size_t pending = 1000;
    const std::size_t fits = max_packet - pending - record_header;
    CHECK(decide_packing(with_batch(packing_put(fits), 3, pending)) == packing_action::append);
    CHECK(decide_packing(with_batch(packing_put(fits + 1), 3, pending)) == packing_action::flush_then_append);
    CHECK(batch_has_room(3, pending, fits, 16));
    CHECK_FALSE(batch_has_room(3, pending, fits + 1, 16));
    CHECK_FALSE(batch_has_room(16, 0, 0, 16));
    CHECK(batch_has_room(15, 0, 0, 16));
  }

  TEST_CASE("a producer following the policy sends packets within the count and the size") {
    producer_model producer;
    std::uint32_t seed = 12345;
    std::size_t put = 0;
    std::size_t inline_puts = 0;
    for (int i = 0; i < 2000; ++i) {
      seed = seed * 1103515245u + 12345u;
      // Mostly small messages, some near the packet size, a few out of band.
      const std::size_t size = (seed >> 8) % 10 == 0 ? max_inline - (seed >> 16) % 64 + 32 : (seed >> 12) % 3000;
      producer.put(size);
      ++put;
      if (!herd::detail::travels_out_of_band(size)) ++inline_puts;
    }
    producer.flush();
    std::size_t packed = 0;
    for (const auto& packet : producer.sent) {
      CHECK(packet.messages >= 1);
      CHECK(packet.messages <= 16);
      CHECK(packet.bytes <= max_packet);
      packed += packet.messages;
    }
    CHECK(packed == inline_puts);
    CHECK(packed + producer.out_of_band == put);
    CHECK(producer.sent.size() < inline_puts);  // it did pack
  }

  TEST_CASE("a producer whose receivers keep up measures the backlog and sends every message alone") {
    producer_model producer;
    producer.backlog = 0;
    for (int i = 0; i < 10; ++i) {
      producer.put(100);
      CHECK(producer.measured);
    }
    CHECK(producer.sent.size() == 10);
    CHECK(producer.count == 0);
  }

  TEST_CASE("with two to a packet five messages leave as two pairs and one pending") {
    producer_model producer;
    producer.batch = 2;
    for (int i = 0; i < 5; ++i) producer.put(10);
    REQUIRE(producer.sent.size() == 2);
    CHECK(producer.sent[0].messages == 2);
    CHECK(producer.sent[1].messages == 2);
    CHECK(producer.count == 1);
  }
}
