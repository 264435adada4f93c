// Circuit privacy by noise flooding (Gentry 2009, section 21; as in Delphi and Cheetah): a
// ciphertext the server computed from its weights carries noise that depends on them
// (e w, and the wrap-around of m w past t). Before returning it the server
//   1. re-randomises it with a fresh public-key encryption of zero, so c1 is a fresh RLWE
//      sample (computational, under RLWE) instead of a function of the weights, and
//   2. adds flooding noise e_f uniform in [-2^b, 2^b) to c0, with 2^b >= B 2^s where B is
//      the largest evaluation noise (noise_bounds(params).evaluation, from public
//      parameters only): for any two noises |v1|, |v2| <= B, v1 + e_f and v2 + e_f are
//      within statistical distance B / 2^b <= 2^-s per coefficient,
//   3. switches to the response level (a public, deterministic map: it cannot undo 2) and
//      keeps only the coefficients that carry results.
#pragma once

#include <memory>
#include <span>

#include "veil/bfv/encryptor.hpp"
#include "veil/bfv/evaluator.hpp"

namespace veil::bfv {

class Flooder {
 public:
  // pk: the client's public key.
  Flooder(ContextPtr ctx, rlwe::PublicKey pk);
  Flooder(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk);

  // Steps 1 and 2 (at the ciphertext's level, which must be the top level: the bound
  // assumes the flood is added before any switching).
  void flood_inplace(Ciphertext& ct) const;
  // Steps 1-3: the response to send back. Fused for speed: only u*(b, a) of the encryption
  // of zero is added in NTT form; the ciphertext then goes to coefficient form once, where
  // e0 + e_f, e1, the switching and the extraction need no further transform (3 transforms
  // per prime instead of about 8). Same distribution as flood_inplace + switch + extract.
  Response finalize(Ciphertext ct, std::span<const std::uint32_t> indices) const;
  // Step 2 on its own, for tests that show what flooding hides: adds e_f only.
  void add_flooding_noise(Ciphertext& ct) const;

 private:
  // Flooding noise for N coefficients: e = U - 2^b, U uniform on b+1 bits, as `words`
  // planes of N words (word w of coefficient j at [w N + j], least significant first).
  std::vector<u64> sample_flood(std::size_t& words) const;
  // e mod q into out[N]: the planes folded most significant first, r <- r 2^64 + word
  // (math::mul_const_add_wide_vec), then 2^b taken off.
  void flood_mod(const std::vector<u64>& u, std::size_t words, const math::Modulus& q, u64* out) const;

  ContextPtr ctx_;
  std::shared_ptr<const rlwe::PublicKey> pk_;
  Encryptor zero_;
  Evaluator eval_;
  int flood_log2_;
};

}  // namespace veil::bfv
