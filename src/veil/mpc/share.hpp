// Additive secret sharing over Z_P: x = x_0 + x_1 mod P with x_1 uniform, so either share
// alone is independent of x (perfect hiding). Masks come from a ChaCha20 stream keyed by
// a fresh seed from the operating system's CSPRNG, never from a statistical generator.
#pragma once

#include <span>
#include <utility>
#include <vector>

#include "veil/common/rng.hpp"
#include "veil/mpc/field.hpp"

namespace veil::mpc {

// Uniform elements of Z_P (`out` counts words: words() per element). Rejection sampling (draw bits(p) bits,
// keep values below p) keeps them exactly uniform; reducing a 64-bit draw mod p would favour small residues.
class MaskSource {
 public:
  MaskSource() : MaskSource(random_seed()) {}
  // A given seed makes the stream reproducible: tests only.
  explicit MaskSource(const Seed& seed) : prng_(seed) {}

  void uniform(const Field& f, std::span<u64> out);
  std::vector<u64> uniform(const Field& f, std::size_t n);

 private:
  Prng prng_;
};

// One party's view of a shared vector.
struct Shared {
  std::vector<u64> server, client;
};

// Splits x (elements of Z_p) into a uniform client share and server = x - client.
Shared split(const Field& f, std::span<const u64> x, MaskSource& masks);
// x = a + b mod p.
std::vector<u64> reconstruct(const Field& f, std::span<const u64> a, std::span<const u64> b);

}  // namespace veil::mpc
