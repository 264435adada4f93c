// Key generation: uniform ternary secret, public key, and hybrid key-switching keys for
// relinearisation, rotations and conjugation. Evaluation keys can be generated at a
// chosen level: a key for level l covers only q_0..q_l (plus P), so keys for shallow
// circuits are proportionally smaller.
#pragma once

#include <span>
#include <vector>

#include "veil/rlwe/context.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::rlwe {

// A secret key from its signed (small) coefficients: NTT form over every prime of `ctx`,
// tagged with its parameter id.
SecretKey secret_key_from(const Context& ctx, std::span<const std::int64_t> coeffs);

class KeyGenerator {
 public:
  // Samples a fresh secret key from the OS CSPRNG.
  explicit KeyGenerator(ContextPtr ctx);
  // Uses an existing secret key.
  KeyGenerator(ContextPtr ctx, const SecretKey& sk);

  const SecretKey& secret_key() const { return sk_; }
  const ContextPtr& context() const { return ctx_; }
  PublicKey create_public_key() const;
  // level < 0 means the context's top level.
  RelinKeys create_relin_keys(int level = -1) const;
  // Keys for rotations by each step (positive: slot j+step moves to slot j), plus
  // conjugation when asked. Duplicate steps share a key.
  GaloisKeys create_galois_keys(const std::vector<int>& steps, bool conjugate = false, int level = -1) const;
  // A key switching s' -> s, where s' is given in NTT form over Q_level * P.
  KeySwitchKey create_switch_key(const u64* s_prime, int level) const;
  // Key for one Galois element.
  KeySwitchKey create_galois_key(std::uint32_t galois_elt, int level) const;

 private:
  int resolve_level(int level) const;
  // s restricted to Q_level * P (NTT form), or its image under X -> X^g.
  std::vector<u64> secret_on(int level, std::uint32_t galois_elt = 1) const;

  ContextPtr ctx_;
  SecretKey sk_;
};

}  // namespace veil::rlwe
