// Integer encryption of any RLWE scheme, under the public key
// (c = u*(b, a) + (m + e0, e1), u ternary) or the secret key (c = (-a*s + e + m, a), a
// expanded from a seed so the ciphertext can be sent as c0 plus 32 bytes), and decryption
// m + e = c0 + c1*s (+ c2*s^2). The message is a polynomial with small integer
// coefficients; schemes put their encoding on top (CKKS: scaled real values, BFV: the
// message times Q/t).
//
// Both own (share) their key, so one built from a temporary key stays valid.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "veil/rlwe/ciphertext.hpp"
#include "veil/rlwe/context.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::rlwe {

class Encryptor {
 public:
  Encryptor(ContextPtr ctx, PublicKey pk);
  Encryptor(ContextPtr ctx, SecretKey sk);
  Encryptor(ContextPtr ctx, std::shared_ptr<const PublicKey> pk);
  Encryptor(ContextPtr ctx, std::shared_ptr<const SecretKey> sk);

  const ContextPtr& context() const { return ctx_; }
  bool is_symmetric() const { return sk_ != nullptr; }

  // Encryption of the integer polynomial m at `level` (empty m: of zero), |m_j| < 2^62,
  // coefficients given in coefficient (not NTT) form. The message joins the error term
  // before the NTT, so each limb takes one NTT for both.
  Ciphertext encrypt_integer(std::span<const std::int64_t> m, int level) const;
  Ciphertext encrypt_zero(int level) const { return encrypt_integer({}, level); }
  // Adds a plaintext already in NTT form (at the ciphertext's level) to an encryption of zero.
  Ciphertext encrypt(const Plaintext& pt) const;

 private:
  void check_public_key() const;
  void check_secret_key() const;

  ContextPtr ctx_;
  std::shared_ptr<const PublicKey> pk_;
  std::shared_ptr<const SecretKey> sk_;
};

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, SecretKey sk);
  Decryptor(ContextPtr ctx, std::shared_ptr<const SecretKey> sk);

  // m + e in NTT form at the ciphertext's level.
  Plaintext decrypt(const Ciphertext& ct) const;
  // m + e as centred integers, for a ciphertext at level 0 (one prime; schemes switch
  // down before reading coefficients).
  std::vector<std::int64_t> decrypt_integer(const Ciphertext& ct) const;

 private:
  ContextPtr ctx_;
  std::shared_ptr<const SecretKey> sk_;
};

}  // namespace veil::rlwe
