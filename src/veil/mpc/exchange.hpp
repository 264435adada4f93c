// What the online protocols need from a transport: one round in which each party sends a
// vector of field elements and receives the peer's. The protocol layer implements it over
// net::Channel (TCP or the in-memory pair); both roles of every protocol below can run in
// one process over it.
#pragma once

#include <span>
#include <vector>

#include "veil/mpc/field.hpp"

namespace veil::mpc {

class Exchange {
 public:
  virtual ~Exchange() = default;
  // Sends `mine`, returns the peer's message of `expect` elements (a peer that sends any
  // other size is an error, named by the implementation).
  virtual std::vector<u64> swap(std::span<const u64> mine, std::size_t expect) = 0;
  // One-way messages, for steps where only one party has something to say (the hybrid
  // mode's masked inputs and its final output share): half a round, no empty reply.
  virtual void send(std::span<const u64> mine) = 0;
  virtual std::vector<u64> receive(std::size_t expect) = 0;
};

}  // namespace veil::mpc
