// Encryption under the public key (c = u*(b, a) + (m + e0, e1), u ternary) or the secret
// key (c = (-a*s + e + m, a), a expanded from a seed so the ciphertext can be sent as
// c0 plus 32 bytes), and decryption m = c0 + c1*s (+ c2*s^2).
#pragma once

#include <span>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/keys.hpp"

namespace veil::ckks {

class Encryptor {
 public:
  Encryptor(ContextPtr ctx, const PublicKey& pk);
  Encryptor(ContextPtr ctx, const SecretKey& sk);

  // Encrypts at the plaintext's level.
  Ciphertext encrypt(const Plaintext& pt) const;
  // An encryption of zero at `level` with the given scale and slot count.
  Ciphertext encrypt_zero(int level, double scale, std::size_t slots) const;
  // Encodes and encrypts in one go, the same as encrypt(encoder.encode(values, scale,
  // level, slots)) but cheaper: the message joins the error term in coefficient form, so
  // each limb takes one NTT for both.
  Ciphertext encrypt(const CkksEncoder& encoder, std::span<const double> values, double scale, int level,
                     std::size_t slots = 0) const;

 private:
  // Encryption of the integer polynomial m (empty: of zero), |m_j| < 2^62.
  Ciphertext encrypt_small(std::span<const std::int64_t> m, int level, double scale, std::size_t slots) const;

  ContextPtr ctx_;
  const PublicKey* pk_ = nullptr;
  const SecretKey* sk_ = nullptr;
};

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, const SecretKey& sk);
  Plaintext decrypt(const Ciphertext& ct) const;

 private:
  ContextPtr ctx_;
  const SecretKey& sk_;
};

}  // namespace veil::ckks
