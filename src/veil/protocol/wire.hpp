// Payload encoding helpers shared by the host's and the protocols' messages (internal to
// veil_protocol). Every count and length read from the wire is checked against a bound
// and the bytes left before anything is allocated.
#pragma once

#include <string>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"
#include "veil/net/frame.hpp"
#include "veil/protocol/error.hpp"

namespace veil::protocol::wire {

using veil::Bytes;  // one byte-vector type for the whole tree (common/bytes.hpp)
// Names the codes of an Error message turned into an exception (the protocol's own codes).
using ErrorNames = std::string (*)(std::uint16_t);

inline net::Frame frame(std::uint16_t type, ByteWriter& w) { return net::Frame{type, w.take()}; }

inline void put_blob(ByteWriter& w, const Bytes& b) {
  w.u64(b.size());
  w.bytes(b);
}

// A count of at most `max`, and at most what `min_bytes` per element leaves room for, so a
// lying count allocates nothing.
inline std::size_t count(ByteReader& r, std::size_t max, std::size_t min_bytes, const char* what) {
  const std::uint32_t n = r.u32();
  VEIL_CHECK_IO(n <= max, what << ": " << n << " entries exceed the limit of " << max);
  VEIL_CHECK_IO(std::uint64_t{n} * min_bytes <= r.remaining(),
                what << ": " << n << " entries do not fit the message");
  return n;
}

inline Bytes get_blob(ByteReader& r, std::size_t max, const char* what) {
  const std::uint64_t n = r.u64();
  VEIL_CHECK_IO(n <= max && n <= r.remaining(), what << ": length " << n << " exceeds the message");
  const auto v = r.view(n);
  return Bytes(v.begin(), v.end());
}

// A frame of type `want`; the peer's Error message instead is thrown with its code (named by
// `names`); anything else is kUnexpectedMessage.
void check_type(const net::Frame& f, std::uint16_t want, const char* want_name, ErrorNames names,
                const char* (*message_name)(std::uint16_t));

// Runs a payload reader over the frame of type T::kType, turning every reader failure into
// kBadMessage naming the message.
template <class T, class Fn>
T read_payload(const net::Frame& f, ErrorNames names, const char* (*message_name)(std::uint16_t), Fn&& fn) {
  const auto type = static_cast<std::uint16_t>(T::kType);
  check_type(f, type, message_name(type), names, message_name);
  try {
    ByteReader r(f.payload);
    T m = fn(r);
    r.expect_end();
    return m;
  } catch (const net::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw error(ErrorCode::kBadMessage, std::string("malformed ") + message_name(type) + ": " + e.what());
  }
}

}  // namespace veil::protocol::wire
