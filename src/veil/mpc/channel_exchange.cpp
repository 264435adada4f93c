#include "veil/mpc/channel_exchange.hpp"

#include <bit>

#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"

namespace veil::mpc {

ChannelExchange::ChannelExchange(net::Channel& channel, Role role, const Field& field,
                                 std::uint16_t frame_type)
    : channel_(channel),
      role_(role),
      field_(field),
      type_(frame_type),
      bits_(static_cast<unsigned>(std::bit_width(field.p() - 1))) {}

void ChannelExchange::send(std::span<const u64> v) {
  ByteWriter w;
  w.u64(v.size());
  w.packed(v, bits_);
  channel_.send(type_, w.buffer());
}

std::vector<u64> ChannelExchange::receive(std::size_t expect) {
  const net::Frame f = channel_.receive();
  VEIL_CHECK_IO(f.type == type_, "share exchange: expected message type " << type_ << ", got " << f.type);
  ByteReader r(f.payload);
  const std::uint64_t n = r.u64();
  VEIL_CHECK_IO(n == expect, "share exchange: peer sent " << n << " values, expected " << expect);
  std::vector<u64> v(expect);
  r.packed(v, bits_);
  r.expect_end();
  for (u64 x : v) VEIL_CHECK_IO(x < field_.p(), "share exchange: peer sent a value outside Z_p");
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
