// CKKS encryption and decryption on top of RLWE integer encryption (rlwe/encryptor.hpp):
// the plaintext's scale and slot count travel with the ciphertext, and encode+encrypt is
// fused so the scaled message joins the error term before the NTT.
#pragma once

#include <memory>
#include <span>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/rlwe/encryptor.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::ckks {

class Encryptor {
 public:
  // The key is copied (or shared): the encryptor never refers to a caller's object.
  Encryptor(ContextPtr ctx, rlwe::PublicKey pk);
  Encryptor(ContextPtr ctx, rlwe::SecretKey sk);
  Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk);
  Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk);

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
  ContextPtr ctx_;
  rlwe::Encryptor base_;
};

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, rlwe::SecretKey sk);
  Decryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk);
  Plaintext decrypt(const Ciphertext& ct) const;

 private:
  rlwe::Decryptor base_;
};

}  // namespace veil::ckks
