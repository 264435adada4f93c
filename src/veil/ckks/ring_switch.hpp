// CKKS ring switching (rlwe/ring_switch.hpp): a ciphertext of degree N becomes one of
// degree N/2 over the same primes, for the part of a computation whose remaining levels
// fit the smaller ring's 128-bit bound. Every later rotation, product and cached
// plaintext is then half the size.
//
// Slots. The even part of m evaluates at the N/2-ring's roots xi^(5^k) = zeta^(2 * 5^k)
// to (m(zeta^(5^k)) + m(-zeta^(5^k))) / 2, and -zeta^(5^k) = zeta^(5^(k + N/4)) (5^(N/4) =
// 1 + N mod 2N), so slot k of the result is the mean of slots k and k + N/4. The switched
// ciphertext carries half the scale, so it decodes to their sum: data in the lower N/4
// slots with zeros above comes out unchanged (one bit of precision is spent: encode it
// at twice the scale beforehand to keep it), and two partial sums in the two halves come
// out added. A sparse ciphertext (slots <= N/4, the vector repeated) keeps its slots and
// scale.
#pragma once

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"
#include "veil/rlwe/key_switch.hpp"
#include "veil/rlwe/keys.hpp"
#include "veil/rlwe/ring_switch.hpp"

namespace veil::ckks {

// The ring of degree N/2 for the levels 0..`level` of `big`: its first level + 1 data
// primes, and as many of its special primes (in order) as the largest key-switching
// digit needs, with the fewest digits that keep the whole within the 128-bit bound of
// degree N/2. Throws std::invalid_argument when no digit count fits (the modulus at that
// level is too large for the smaller ring).
CkksParameters ring_switch_target(const CkksParameters& big, int level);

class RingSwitcher {
 public:
  // Throws std::invalid_argument when `small` is not a ring_switch_target-shaped ring of
  // `big` (half the degree, a prefix of its chain, primes = 1 mod 2N).
  RingSwitcher(ContextPtr big, ContextPtr small);

  const ContextPtr& big() const { return big_; }
  const ContextPtr& small() const { return small_; }
  // The parameters the key lives under (degree N, the small ring's primes).
  const rlwe::ContextPtr& switching_context() const { return switching_; }

  // Client side: needs both secret keys; the key reveals neither (rlwe/ring_switch.hpp).
  rlwe::KeySwitchKey create_key(const rlwe::SecretKey& big_sk, const rlwe::SecretKey& small_sk) const;
  // Server side: `ct` (size 2, of `big`, at or below the small ring's top level) in the
  // small ring at the same level.
  Ciphertext apply(const Ciphertext& ct, const rlwe::KeySwitchKey& key) const;

 private:
  ContextPtr big_, small_;
  rlwe::ContextPtr switching_;
  rlwe::KeySwitcher switcher_;
};

}  // namespace veil::ckks
