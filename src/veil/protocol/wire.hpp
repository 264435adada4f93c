// Payload encoding helpers shared by the host's and the protocols' messages (internal to
// veil_protocol). Every count and length read from the wire is checked against a bound
// and the bytes left before anything is allocated.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"
#include "veil/net/frame.hpp"
#include "veil/nn/network.hpp"
#include "veil/protocol/error.hpp"

namespace veil::protocol::wire {

using veil::Bytes;  // one byte-vector type for the whole tree (common/bytes.hpp)
// Names the codes of an Error message turned into an exception (the protocol's own codes).
using ErrorNames = std::string (*)(std::uint16_t);

inline net::Frame frame(std::uint16_t type, ByteWriter& w) { return net::Frame{type, w.take()}; }

inline void put_blob(ByteWriter& w, std::span<const std::uint8_t> b) {
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

// A length-prefixed blob in place (a view into the message) or copied out.
inline std::span<const std::uint8_t> get_blob_view(ByteReader& r, std::size_t max, const char* what) {
  const std::uint64_t n = r.u64();
  VEIL_CHECK_IO(n <= max && n <= r.remaining(), what << ": length " << n << " exceeds the message");
  return r.view(n);
}
inline Bytes get_blob(ByteReader& r, std::size_t max, const char* what) {
  const auto v = get_blob_view(r, max, what);
  return Bytes(v.begin(), v.end());
}

// --- bounded fields (the same encoding in every protocol) ------------------------------

// A signed 32-bit value.
inline int get_int(ByteReader& r) { return static_cast<int>(static_cast<std::int32_t>(r.u32())); }

inline void put_ints(ByteWriter& w, const std::vector<int>& v) {
  w.u32(static_cast<std::uint32_t>(v.size()));
  for (int x : v) w.u32(static_cast<std::uint32_t>(x));
}
inline std::vector<int> get_ints(ByteReader& r, std::size_t max, const char* what) {
  std::vector<int> v(count(r, max, 4, what));
  for (int& x : v) x = get_int(r);
  return v;
}

inline void put_doubles(ByteWriter& w, const std::vector<double>& v) {
  w.u32(static_cast<std::uint32_t>(v.size()));
  for (double x : v) w.f64(x);
}
// Finite values only.
inline std::vector<double> get_doubles(ByteReader& r, std::size_t max, const char* what) {
  std::vector<double> v(count(r, max, 8, what));
  for (double& x : v) {
    x = r.f64();
    VEIL_CHECK_IO(std::isfinite(x), what << ": non-finite value");
  }
  return v;
}

inline void put_blobs(ByteWriter& w, const std::vector<Bytes>& v) {
  w.u32(static_cast<std::uint32_t>(v.size()));
  for (const auto& b : v) put_blob(w, b);
}
inline std::vector<Bytes> get_blobs(ByteReader& r, std::size_t max, const char* what) {
  std::vector<Bytes> v(count(r, max, 8, what));
  for (auto& b : v) b = get_blob(r, r.remaining(), what);
  return v;
}

inline void put_shape(ByteWriter& w, const nn::Shape& s) {
  w.u32(static_cast<std::uint32_t>(s.c));
  w.u32(static_cast<std::uint32_t>(s.h));
  w.u32(static_cast<std::uint32_t>(s.w));
}
inline nn::Shape get_shape(ByteReader& r, const char* what) {
  nn::Shape s;
  s.c = get_int(r);
  s.h = get_int(r);
  s.w = get_int(r);
  VEIL_CHECK_IO(s.within_limits(), what << ": bad shape " << s.c << "x" << s.h << "x" << s.w);
  return s;
}

// The model card both protocols' ServerInfo opens with (the fields of nn::PublicPlan's
// first part): names, input shape, normalisation and class names. Templated on the
// message, whose members carry these names.
inline constexpr std::size_t kMaxName = 256;  // model, dataset and class names
inline constexpr std::size_t kMaxClasses = 65536;
inline constexpr std::size_t kMaxChannels = 4096;  // input channels (mean/std entries)
template <class Card>
void put_card(ByteWriter& w, const Card& m) {
  w.str(m.model);
  w.str(m.dataset);
  put_shape(w, m.input);
  put_doubles(w, m.mean);
  put_doubles(w, m.std);
  w.u32(static_cast<std::uint32_t>(m.classes.size()));
  for (const auto& c : m.classes) w.str(c);
}
template <class Card>
void get_card(ByteReader& r, Card& m) {
  m.model = r.str(kMaxName);
  m.dataset = r.str(kMaxName);
  m.input = get_shape(r, "input shape");
  m.mean = get_doubles(r, kMaxChannels, "mean");
  m.std = get_doubles(r, kMaxChannels, "std");
  m.classes.resize(count(r, kMaxClasses, 4, "classes"));
  for (auto& c : m.classes) c = r.str(kMaxName);
}

// --- typed frames -------------------------------------------------------------------------

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

// One protocol's message set, framed and read one way: its message-type enum and the
// names of its codes and messages (for errors). Each message struct names its type as
// `static constexpr Type kType`; a payload reader gets the body and must consume all of it.
template <class Type>
class Codec {
 public:
  using MessageNames = const char* (*)(std::uint16_t);
  constexpr Codec(ErrorNames errors, MessageNames messages) : errors_(errors), messages_(messages) {}

  net::Frame frame(Type type, ByteWriter& w) const {
    return wire::frame(static_cast<std::uint16_t>(type), w);
  }
  // The message T from a frame of type T::kType (else the peer's Error, or kUnexpectedMessage);
  // every reader failure becomes kBadMessage naming the message.
  template <class T, class Fn>
  T read(const net::Frame& f, Fn&& fn) const {
    return read_payload<T>(f, errors_, messages_, std::forward<Fn>(fn));
  }
  // A message with an empty body.
  template <class T>
  T read_empty(const net::Frame& f) const {
    return read<T>(f, [](ByteReader&) { return T{}; });
  }

 private:
  ErrorNames errors_;
  MessageNames messages_;
};

}  // namespace veil::protocol::wire
