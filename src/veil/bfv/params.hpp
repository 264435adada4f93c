// Parameters of the exact (BFV-style) scheme (Brakerski 2012, Fan-Vercauteren 2012, in the
// full-RNS form of Bajard-Eynard-Hasan-Zucca 2016) as the hybrid mode uses it: ciphertext x
// plaintext products only (Cheetah, Huang et al., USENIX Security 2022), so no special
// primes and no key-switching keys; the whole 128-bit budget goes to the data primes.
//
// Besides the RLWE part (ring degree, data primes; security checked against the same HE
// Standard table as CKKS, rlwe::max_log_qp_128), the parameters fix the public facts the
// circuit-privacy bound is derived from: the plaintext modulus t, a public bound on the L1
// norm of what is multiplied into one returned ciphertext, the flooding margin s, and the
// level responses are switched down to. noise_bounds() derives every bound from these
// alone (never from the server's weights, which would leak them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/math/modarith.hpp"
#include "veil/rlwe/params.hpp"

namespace veil::bfv {

using math::u64;

// Largest prime below 2^bits with t = 1 mod 2^(log_n+1): SIMD batching works for every ring
// degree up to 2^log_n, so one t serves every layer of the hybrid mode (share field p = t).
u64 plaintext_prime(int bits, int log_n = 16);

struct BfvParameters : rlwe::Parameters {
  // Plaintext modulus, 2 <= t < 2^61. A prime t = 1 mod 2N also allows SIMD batching.
  u64 t = 0;
  // Public bound on sum_j ||w_j||_1 over the plaintexts w_j (centred coefficients) multiplied
  // into one returned ciphertext (a convolution: C * kh * kw * max|weight|).
  double max_l1_norm = 1;
  // Flooding margin s: flooding noise is at least 2^s times the largest evaluation noise.
  int flood_bits = 40;
  // Responses are switched down to the primes q_0..q_response_level.
  int response_level = 0;

  bool batching() const;
  // Empty when valid, else the reason: rlwe's checks, t, and the noise capacity (the
  // flooded result must decrypt at the top level and after switching to response_level).
  std::string validate() const;
  std::string describe() const;

  // Generates the data primes for the given sizes (distinct from t).
  static BfvParameters create(int log_n, const std::vector<int>& q_bits, u64 t, int response_level,
                              double max_l1_norm, int flood_bits = 40, bool allow_insecure = false);
};

// Noise bounds (infinity norms of the noise v in c0 + c1 s = Delta m + v mod Q), derived
// from public parameters only; docs/protocols.md carries the derivation.
struct NoiseBounds {
  long double fresh_sk = 0;       // E = 19: the Gaussian sampler's cut (6 sigma, sigma 3.19), rounded
  long double fresh_pk = 0;       // E (2N + 1): e0 + u e + e1 s
  long double evaluation = 0;     // B = L fresh_pk + t (L + 2) / 2: sum_j ct_j w_j + one plaintext
  int flood_log2 = 0;             // b = ceil(log2 B) + s: flooding uniform in [-2^b, 2^b)
  long double before_switch = 0;  // B + fresh_pk (re-randomisation) + 2^b
  long double after_switch = 0;   // before_switch Q'/Q + N + 1 + t
};
NoiseBounds noise_bounds(const BfvParameters& p);

// What select_parameters needs to know.
struct ParameterRequest {
  int t_bits = 0;  // size of t when t is not given (plaintext_prime(t_bits, 16))
  u64 t = 0;       // or t itself
  bool batching = true;
  // Public L1 bound (see BfvParameters::max_l1_norm); 0 means arbitrary plaintexts mod t,
  // as in SIMD products (L = N t / 2).
  double max_l1_norm = 0;
  int flood_bits = 40;
  int min_log_n = 12, max_log_n = 17;
};

// The smallest ring degree and shortest modulus chain (primes of at most 50 bits, for the
// SIMD kernels) that decrypt exactly after flooding and switching to the response level,
// within the 128-bit bound. Throws std::invalid_argument naming the reason otherwise.
BfvParameters select_parameters(const ParameterRequest& r);

}  // namespace veil::bfv
