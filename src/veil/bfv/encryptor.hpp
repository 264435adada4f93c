// BFV encryption and exact decryption on top of RLWE encryption (rlwe/encryptor.hpp).
//
// Encryption: c0 + c1 s = Delta m + e with Delta = floor(Q/t) and m the centred
// representative of the plaintext. Under the secret key c1 is expanded from a 32-byte seed,
// so an upload is c0 plus the seed (bfv/serialize.hpp); under the public key the client
// (or the server, when re-randomising) needs no secret.
//
// Decryption is exact: m = round(t [c0 + c1 s]_Q / Q) mod t computed with integer
// arithmetic only. With x_i the residues of x = [c0 + c1 s]_Q, y_i = [x_i (Q/q_i)^-1]_{q_i}
// gives x = sum_i y_i Q/q_i - v Q for an integer v, so t x / Q = sum_i t y_i / q_i - t v and
// modulo t the rounding only needs sum_i (floor(t y_i / q_i) + b_i / q_i), b_i = t y_i mod
// q_i. The fractional sum is rounded exactly by comparing 2 sum_i b_i Q/q_i + Q with
// multiples of 2Q in multi-precision (a few words), so no floating point is involved and
// every level and every number of primes decrypts exactly.
#pragma once

#include <memory>
#include <vector>

#include "veil/bfv/plaintext.hpp"
#include "veil/bfv/response.hpp"
#include "veil/rlwe/encryptor.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::bfv {

class Encryptor {
 public:
  Encryptor(ContextPtr ctx, rlwe::PublicKey pk);
  Encryptor(ContextPtr ctx, rlwe::SecretKey sk);
  Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk);
  Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk);

  const ContextPtr& context() const { return ctx_; }
  // At the top level (secret-key ciphertexts keep their seed: saved seed-compressed).
  Ciphertext encrypt(const Plaintext& p) const;
  Ciphertext encrypt_zero(int level = -1) const;

 private:
  ContextPtr ctx_;
  rlwe::Encryptor base_;
};

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, rlwe::SecretKey sk);
  Decryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk);

  Plaintext decrypt(const Ciphertext& ct) const;
  // The plaintext coefficients (mod t) at the response's indices, in its order.
  std::vector<u64> decrypt(const Response& r) const;
  // The centred noise v = [c0 + c1 s - Delta m]_Q of each coefficient, m the decryption
  // (for tests and noise measurements; exact up to the double's rounding).
  std::vector<double> noise(const Ciphertext& ct) const;
  // The same at a response's indices.
  std::vector<double> noise(const Response& r) const;

 private:
  // [c0 + c1 s] at the response's indices, per limb.
  rlwe::PolyData response_phase(const Response& r) const;
  ContextPtr ctx_;
  std::shared_ptr<const rlwe::SecretKey> sk_;
};

}  // namespace veil::bfv
