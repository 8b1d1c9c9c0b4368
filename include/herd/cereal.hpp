/// @file herd/cereal.hpp
/// Sends types that cereal serializes (a `serialize`, or `save`/`load`, member or function) —
/// rule 5 of herd/codec.hpp. Opt-in, so that only code whose types need cereal parses it.
///
/// Include it wherever such a type is sent or received (a queue's or pipe's `put`/`get`, a
/// function child's result). Where it is missing, the build stops with codec.hpp's message
/// naming this header; no translation unit can encode such a type differently.
///
/// herd's own rules come first: a struct herd can send field by field is sent that way even if
/// it has a serialize(); cereal is asked only for what the rules refuse (private members, a
/// pointer cereal knows how to follow, a class that is not an aggregate).
#pragma once

#include <herd/codec.hpp>

#include <cereal/archives/binary.hpp>

#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

namespace herd::detail {

template <typename T>
struct fallback_codec<T, std::enable_if_t<cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
                                          cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value>> {
  static constexpr bool available = true;

  static void encode(encoder& e, const T& v) {
    std::ostringstream stream;
    {
      cereal::BinaryOutputArchive archive(stream);
      archive(v);
    }
    e.value(std::move(stream).str());
  }

  static T decode(decoder& d) {
    std::istringstream stream(d.value<std::string>());
    cereal::BinaryInputArchive archive(stream);
    T v;
    try {
      archive(v);
    } catch (const cereal::Exception&) {
      decoder::fail("cereal could not read the message");
    }
    return v;
  }
};

}  // namespace herd::detail
