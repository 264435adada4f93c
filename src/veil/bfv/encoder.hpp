// SIMD batching for BFV (Smart-Vercauteren 2014; as in SEAL's BatchEncoder): with a prime
// t = 1 mod 2N, Z_t[X]/(X^N + 1) splits into N copies of Z_t, and the negacyclic NTT mod t
// maps a plaintext to its N slot values, so ct x pt multiplies slot-wise. The hybrid mode
// never rotates, so slot j is simply NTT output j (no row/column order is needed).
//
// Coefficient encoding needs no encoder: Plaintext(ctx, coefficients) (conv_layout.hpp lays
// out convolutions and matrix-vector products in coefficients).
#pragma once

#include <span>
#include <vector>

#include "veil/bfv/plaintext.hpp"

namespace veil::bfv {

class BatchEncoder {
 public:
  // Throws unless the parameters allow batching.
  explicit BatchEncoder(ContextPtr ctx);
  std::size_t slots() const { return ctx_->n(); }
  // Values mod t, one per slot; fewer than N are zero-padded.
  Plaintext encode(std::span<const u64> values) const;
  std::vector<u64> decode(const Plaintext& p) const;
  // Decodes N coefficients mod t (what Decryptor::decrypt(Response) returns for all indices).
  std::vector<u64> decode(std::span<const u64> coeffs) const;

 private:
  ContextPtr ctx_;
};

}  // namespace veil::bfv
