// CKKS encoder: the canonical embedding through the "special FFT" of HEAAN (Cheon et
// al. 2017). Slot j of a plaintext with n slots holds m(zeta^(5^j)), zeta = exp(i*pi/N),
// the convention shared by SEAL, OpenFHE and Lattigo; n may be any power of two up to
// N/2 (sparse packing places coefficients N/(2n) apart, so rotations by k still act as
// X -> X^(5^k)).
#pragma once

#include <complex>
#include <span>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"

namespace veil::ckks {

using Complex = std::complex<double>;

class CkksEncoder {
 public:
  explicit CkksEncoder(ContextPtr ctx);
  const ContextPtr& context() const { return ctx_; }

  // slots = 0 means N/2. values.size() must not exceed slots; missing slots are zero.
  Plaintext encode(std::span<const Complex> values, double scale, int level, std::size_t slots = 0) const;
  Plaintext encode(std::span<const double> values, double scale, int level, std::size_t slots = 0) const;
  // The same value in every slot: only the constant coefficient (and X^(N/2) for the
  // imaginary part) is non-zero, so no FFT is needed.
  Plaintext encode_constant(Complex value, double scale, int level, std::size_t slots = 0) const;

  std::vector<Complex> decode(const Plaintext& pt) const;
  std::vector<double> decode_real(const Plaintext& pt) const;

  // Exposed for tests: in-place special FFT (evaluation at the slot roots) and inverse.
  void special_fft(std::vector<Complex>& v) const;
  void special_ifft(std::vector<Complex>& v) const;

  // The polynomial encode() rounds and reduces: the inverse embedding of the values, times
  // scale, as N coefficients (checked like encode; slots resolved the same way).
  std::vector<double> scaled_coefficients(std::span<const Complex> values, double scale, int level,
                                          std::size_t& slots) const;
  std::vector<double> scaled_coefficients(std::span<const double> values, double scale, int level,
                                          std::size_t& slots) const;

  // round(coeffs[j]) as integers into `out` when all are below 2^62 in magnitude (the
  // common case, where residues come from one integer per coefficient); false when some
  // are larger. Throws on a non-finite value.
  static bool round_to_int64(std::span<const double> coeffs, std::vector<std::int64_t>& out);

  // Writes round(coeffs[j]) (any magnitude) modulo each data prime up to `level` into pt,
  // then NTT. Used by encode and by tests.
  void coeffs_to_plaintext(std::span<const double> coeffs, Plaintext& pt) const;

  // The polynomial encode() gives, over Q_level * P: level + 1 data limbs, then the
  // special limbs, NTT form (the plaintext operand of double hoisting, ExtendedCiphertext
  // in ckks/ciphertext.hpp). The caller keeps the scale.
  PolyData encode_extended(std::span<const Complex> values, double scale, int level,
                           std::size_t slots = 0) const;
  PolyData encode_extended(std::span<const double> values, double scale, int level,
                           std::size_t slots = 0) const;

 private:
  std::size_t resolve_slots(std::size_t slots, std::size_t count) const;
  // round(coeffs) modulo each listed prime of the context into consecutive limbs of out, NTT.
  void coeffs_to_limbs(std::span<const double> coeffs, const std::vector<std::size_t>& primes,
                       u64* out) const;
  ContextPtr ctx_;
  std::vector<Complex> roots_;          // exp(2 pi i k / 2N), k = 0..2N
  std::vector<std::size_t> rot_group_;  // 5^j mod 2N
  // Butterfly twiddles of the special FFT and its inverse: entry lenh - 1 + j for the
  // stage of half-length lenh (they do not depend on the slot count). Encoding runs per
  // plaintext diagonal in the linear layers, so its index arithmetic is hoisted here.
  std::vector<Complex> fft_twiddles_, ifft_twiddles_;
};

}  // namespace veil::ckks
