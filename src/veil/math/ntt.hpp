// Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
//
// Forward: Cooley-Tukey butterflies with the 2N-th root psi merged in (no separate
// pre-twist), natural-order input, bit-reversed output. Inverse: Gentleman-Sande,
// bit-reversed input, natural output. Both use Harvey's lazy butterflies (Harvey 2014,
// "Faster arithmetic for number-theoretic transforms"): values stay in [0, 4q) between
// stages and twiddle products use Shoup's precomputed quotients, so a butterfly costs
// two multiplies and no division.
//
// Output slot j of the forward transform holds a(psi^(2*bitrev(j)+1)).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "veil/math/cpu.hpp"
#include "veil/math/modarith.hpp"

namespace veil::math {

class NttTables {
 public:
  NttTables(int log_n, const Modulus& q);
  // The tables for (N, q), shared by every holder in the process: contexts for the same or
  // overlapping chains (a server's model, its ring-switching and result contexts, a
  // client's copy) would otherwise each hold their own, 2.5 MiB a prime at N = 2^15
  // (cifar10-shallow's server: 157 -> 106 MiB). Built on first use, freed with the last
  // holder; thread-safe.
  static std::shared_ptr<const NttTables> shared(int log_n, const Modulus& q);

  int log_n() const { return log_n_; }
  std::size_t n() const { return n_; }
  const Modulus& modulus() const { return q_; }
  u64 psi() const { return psi_; }

  // In place; input coefficients in [0, q), output in [0, q).
  void forward(u64* a) const;
  void inverse(u64* a) const;
  // forward on residues held in 32-bit words (primes below 2^32). Where a kernel on 32-bit
  // lanes runs (primes below 2^30), it skips its passes that narrow the limb and widen it
  // back, and the caller keeps half the bytes: the form of cached weight diagonals
  // (he/mac.hpp, PackedWidth::k32). Elsewhere it goes through 64-bit words. Equal to
  // forward, word for word.
  void forward32(std::uint32_t* a) const;
  // Whether forward32 runs a kernel on 32-bit lanes here (else it copies through 64 bits).
  bool forward32_native() const;

  // Index in the NTT-domain (bit-reversed) layout of the evaluation at psi^(odd exponent e).
  std::size_t index_of_exponent(std::size_t e) const;

  const std::vector<u64>& psi_rev() const { return psi_rev_; }
  const std::vector<u64>& psi_rev_shoup() const { return psi_rev_shoup_; }
  const std::vector<u64>& psi_inv_rev() const { return psi_inv_rev_; }
  const std::vector<u64>& psi_inv_rev_shoup() const { return psi_inv_rev_shoup_; }
  u64 n_inv() const { return n_inv_; }
  u64 n_inv_shoup() const { return n_inv_shoup_; }
  // Twiddles as doubles and their quotients w/q, for the AVX2/FMA kernel (q < 2^50).
  const std::vector<double>& psi_rev_double() const { return psi_rev_d_; }
  const std::vector<double>& psi_rev_quot() const { return psi_rev_q_; }
  const std::vector<double>& psi_inv_rev_double() const { return psi_inv_rev_d_; }
  const std::vector<double>& psi_inv_rev_quot() const { return psi_inv_rev_q_; }
  double n_inv_double() const { return static_cast<double>(n_inv_); }
  double n_inv_quot() const { return static_cast<double>(n_inv_) / static_cast<double>(q_.value()); }
  // 52-bit Shoup quotients floor(w 2^52 / q) for the AVX-512 IFMA kernel: filled only
  // for primes below 2^50 on CPUs with IFMA, empty otherwise.
  const std::vector<u64>& psi_rev_shoup52() const { return psi_rev_shoup52_; }
  const std::vector<u64>& psi_inv_rev_shoup52() const { return psi_inv_rev_shoup52_; }
  u64 n_inv_shoup52() const { return n_inv_shoup52_; }
  // 32-bit twiddles and their Shoup quotients floor(w 2^32 / q) for the kernels on 32-bit
  // lanes (ntt_avx2_narrow.cpp, ntt_avx512_narrow.cpp): filled only for primes below 2^30
  // and N >= 16 on CPUs with AVX2, empty otherwise. last_inv32: psi_inv_rev[1] / N, the
  // inverse's last twiddle with the scaling folded in.
  const std::vector<std::uint32_t>& psi_rev32() const { return psi_rev32_; }
  const std::vector<std::uint32_t>& psi_rev32_shoup() const { return psi_rev32_shoup_; }
  const std::vector<std::uint32_t>& psi_inv_rev32() const { return psi_inv_rev32_; }
  const std::vector<std::uint32_t>& psi_inv_rev32_shoup() const { return psi_inv_rev32_shoup_; }
  std::uint32_t n_inv32() const { return static_cast<std::uint32_t>(n_inv_); }
  std::uint32_t n_inv32_shoup() const { return n_inv32_shoup_; }
  std::uint32_t last_inv32() const { return last_inv32_; }
  std::uint32_t last_inv32_shoup() const { return last_inv32_shoup_; }
  // The kernel forward/inverse run for this prime on this CPU at the current simd_level().
  SimdLevel kernel_level() const;
  // Whether forward/inverse run a SIMD kernel (kernel_level() above scalar).
  bool uses_simd() const;

 private:
  int log_n_;
  std::size_t n_;
  Modulus q_;
  u64 psi_;
  std::vector<u64> psi_rev_, psi_rev_shoup_, psi_inv_rev_, psi_inv_rev_shoup_;
  u64 n_inv_, n_inv_shoup_;
  std::vector<double> psi_rev_d_, psi_rev_q_, psi_inv_rev_d_, psi_inv_rev_q_;
  std::vector<u64> psi_rev_shoup52_, psi_inv_rev_shoup52_;
  u64 n_inv_shoup52_ = 0;
  std::vector<std::uint32_t> psi_rev32_, psi_rev32_shoup_, psi_inv_rev32_, psi_inv_rev32_shoup_;
  std::uint32_t n_inv32_shoup_ = 0, last_inv32_ = 0, last_inv32_shoup_ = 0;
};

std::size_t bit_reverse(std::size_t x, int bits);

// Scalar kernels (portable), exposed so tests can compare them with the SIMD kernels.
void ntt_forward_scalar(const NttTables& t, u64* a);
void ntt_inverse_scalar(const NttTables& t, u64* a);
// AVX2 + FMA kernels (ntt_avx2.cpp); only for primes below 2^50 and N >= 8.
bool ntt_avx2_applicable(const NttTables& t);
void ntt_forward_avx2(const NttTables& t, u64* a);
void ntt_inverse_avx2(const NttTables& t, u64* a);
// AVX2 kernels on eight 32-bit lanes (ntt_avx2_narrow.cpp), for primes below 2^30 and
// N >= 16; forward/inverse run them in place of the kernels above wherever they apply.
bool ntt_avx2_narrow_applicable(const NttTables& t);
void ntt_forward_avx2_narrow(const NttTables& t, u64* a);
void ntt_inverse_avx2_narrow(const NttTables& t, u64* a);
// The forward kernel on a limb already in 32-bit words, left in them (NttTables::forward32).
void ntt_forward_avx2_narrow32(const NttTables& t, std::uint32_t* a);
// AVX-512 kernels (ntt_avx512.cpp), for N >= 16 and every prime the tables accept: IFMA52
// for primes below 2^50 (ntt_avx512_uses_ifma), 64-bit Shoup products above. Callers
// check cpu_features().avx512_ifma first.
bool ntt_avx512_applicable(const NttTables& t);
bool ntt_avx512_uses_ifma(const NttTables& t);
void ntt_forward_avx512(const NttTables& t, u64* a);
void ntt_inverse_avx512(const NttTables& t, u64* a);
// AVX-512 kernels on sixteen 32-bit lanes (ntt_avx512_narrow.cpp), for primes below 2^30
// and N >= 32 (the narrow tables above filled); forward/inverse run them in place of the
// 64-bit-lane AVX-512 kernels wherever they apply.
bool ntt_avx512_narrow_applicable(const NttTables& t);
void ntt_forward_avx512_narrow(const NttTables& t, u64* a);
void ntt_inverse_avx512_narrow(const NttTables& t, u64* a);
void ntt_forward_avx512_narrow32(const NttTables& t, std::uint32_t* a);

}  // namespace veil::math
