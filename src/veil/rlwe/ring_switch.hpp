// Ring switching from R_N to the subring R_{N/2} (Chen, Dai, Kim, Song, "Efficient
// homomorphic conversion between (ring) LWE ciphertexts", ACNS 2021, §4; the dimension
// reduction of Gentry-Halevi-Smart 2012): once a computation's data is small and its
// modulus low, the rest of it runs in a ring of half the degree, where every product,
// rotation and cached plaintext costs half as much.
//
// With t(X) = s'(X^2) for a secret s' of R_{N/2}, a ciphertext (c0, c1) under s is key
// switched to (c0', c1') under t; writing c = c_e(X^2) + X c_o(X^2), the even halves
// satisfy c0'_e + c1'_e s' = m_e + e_e in R_{N/2}: the ciphertext of m's even part.
//
// Security. The key switching from s to t runs in R_N over the small ring's primes
// ("switching parameters": the small ring's data and special primes at degree N). Each
// of its RLWE samples (a, -a t + e + ...) splits into two independent R_{N/2} samples
// under s' (the even and odd halves of a and e), so the key is exactly as hard to break
// as the small ring's own keys, which the small parameters' 128-bit check covers. That is
// why the switching parameters take the small ring's primes, not the large ring's: the
// same key over the large ring's modulus would be R_{N/2} samples over a modulus far
// beyond the N/2 bound.
#pragma once

#include "veil/rlwe/context.hpp"
#include "veil/rlwe/key_switch.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::rlwe {

// `small` (degree N/2) lifted to `big`'s degree N: its primes (which must be = 1 mod 2N,
// e.g. taken from `big`'s chain) and digits. Its security is `small`'s (see above), not
// what the degree-N table would say; throws std::invalid_argument naming the problem
// when `small` is not half of `big` or a prime does not fit degree N.
Parameters ring_switch_parameters(const Parameters& big, const Parameters& small);

// Client side: the key switching big_sk's s to s'(X^2), s' = small_sk, under the
// switching context (made from ring_switch_parameters). Up to the switching context's top
// level.
KeySwitchKey create_ring_switch_key(const Context& big, const SecretKey& big_sk, const ContextPtr& switching,
                                    const Context& small, const SecretKey& small_sk);

// Server side: (c0, c1), level + 1 limbs each in `big`'s NTT form (the switching
// context's primes are the first limbs' primes), to (out0, out1) over `small` at the same
// level, NTT form, out0/out1 holding (level + 1) * N/2 words each. The message becomes
// its even part m_e(Y), Y = X^2 (for CKKS: slot k of the result is the mean of slots k and
// k + N/4).
void ring_switch(const KeySwitcher& switcher, const Context& switching, const Context& small,
                 const KeySwitchKey& key, const u64* c0, const u64* c1, int level, u64* out0, u64* out1);

// The signed coefficients of a secret key (ternary), read back from its NTT form.
std::vector<std::int64_t> secret_coefficients(const Context& ctx, const SecretKey& sk);

// The small ring's secret s', derived from the large one: a uniform ternary polynomial
// drawn from a ChaCha20 stream whose key is BLAKE2b-256 of s (keyed by a fixed label), so
// a client keeps one secret key file for both rings. s has about 1.58 N bits of entropy
// and the hash is a PRF, so s' is as good as an independent sample; nothing derived from
// it leaves the client but the (encrypted) keys.
SecretKey derive_subring_secret(const Context& big, const SecretKey& big_sk, const Context& small);

}  // namespace veil::rlwe
