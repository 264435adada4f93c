#include "veil/mpc/channel_exchange.hpp"

#include <bit>

#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"

namespace veil::mpc {

ChannelExchange::ChannelExchange(net::Channel& channel, Role role, const Field& field,
                                 std::uint16_t frame_type)
    : channel_(channel), role_(role), field_(field), type_(frame_type) {}

namespace {

unsigned bits_of(const Field& f, int r) { return static_cast<unsigned>(std::bit_width(f.p(r) - 1)); }

}  // namespace

void ChannelExchange::send(std::span<const u64> v) {
  ByteWriter w;
  w.u64(v.size());
  if (field_.words() == 1) {
    w.packed(v, bits_of(field_, 0));
  } else {
    // Residue by residue, each at its own prime's width.
    check_words(field_, v.size(), "share exchange");
    std::vector<u64> part(v.size() / 2);
    for (int r = 0; r < 2; ++r) {
      for (std::size_t i = 0; i < part.size(); ++i) part[i] = v[2 * i + static_cast<std::size_t>(r)];
      w.packed(part, bits_of(field_, r));
    }
  }
  channel_.send(type_, w.buffer());
}

std::vector<u64> ChannelExchange::receive(std::size_t expect) {
  const net::Frame f = channel_.receive();
  VEIL_CHECK_IO(f.type == type_, "share exchange: expected message type " << type_ << ", got " << f.type);
  ByteReader r(f.payload);
  const std::uint64_t n = r.u64();
  VEIL_CHECK_IO(n == expect, "share exchange: peer sent " << n << " values, expected " << expect);
  VEIL_CHECK_IO(n % static_cast<std::uint64_t>(field_.words()) == 0,
                "share exchange: peer sent " << n << " words, not whole elements");
  std::vector<u64> v(expect);
  if (field_.words() == 1) {
    r.packed(v, bits_of(field_, 0));
  } else {
    std::vector<u64> part(v.size() / 2);
    for (int k = 0; k < 2; ++k) {
      r.packed(part, bits_of(field_, k));
      for (std::size_t i = 0; i < part.size(); ++i) v[2 * i + static_cast<std::size_t>(k)] = part[i];
    }
  }
  r.expect_end();
  VEIL_CHECK_IO(in_field(field_, v), "share exchange: peer sent a value outside Z_p");
  return v;
}

std::vector<u64> ChannelExchange::swap(std::span<const u64> mine, std::size_t expect) {
  if (role_ == Role::kServer) {
    send(mine);
    return receive(expect);
  }
  auto peer = receive(expect);
  send(mine);
  return peer;
}

}  // namespace veil::mpc
