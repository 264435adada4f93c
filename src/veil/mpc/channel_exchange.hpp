// mpc::Exchange over a net::Channel: the same online protocols run over TCP between
// `veil serve` and `veil client` and over the in-memory pair in tests.
//
// Order: the server sends first and then receives; the client receives first and then
// sends. With blocking channels this cannot deadlock however large the messages (two
// parties that both send first could both block on full socket buffers), and a round
// costs one round trip either way.
#pragma once

#include <cstdint>

#include "veil/mpc/exchange.hpp"
#include "veil/net/channel.hpp"

namespace veil::mpc {

class ChannelExchange : public Exchange {
 public:
  // `frame_type`: the protocol's message type for share vectors.
  ChannelExchange(net::Channel& channel, Role role, const Field& field, std::uint16_t frame_type);

  // Field elements travel packed at bits(p) bits each (two primes: first every word of
  // residue 0 at bits(p_0), then those of residue 1 at bits(p_1)). A peer message of another type,
  // another length or with an element >= p is refused with net::Error naming it.
  std::vector<u64> swap(std::span<const u64> mine, std::size_t expect) override;
  void send(std::span<const u64> v) override;
  std::vector<u64> receive(std::size_t expect) override;

 private:
  net::Channel& channel_;
  Role role_;
  const Field& field_;
  std::uint16_t type_;
};

}  // namespace veil::mpc
