#include "veil/ckks/encryptor.hpp"

#include "veil/common/error.hpp"

namespace veil::ckks {

Encryptor::Encryptor(ContextPtr ctx, rlwe::PublicKey pk) : ctx_(ctx), base_(std::move(ctx), std::move(pk)) {}
Encryptor::Encryptor(ContextPtr ctx, rlwe::SecretKey sk) : ctx_(ctx), base_(std::move(ctx), std::move(sk)) {}
Encryptor::Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk)
    : ctx_(ctx), base_(std::move(ctx), std::move(pk)) {}
Encryptor::Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk)
    : ctx_(ctx), base_(std::move(ctx), std::move(sk)) {}

Ciphertext Encryptor::encrypt_zero(int level, double scale, std::size_t slots) const {
  return Ciphertext(base_.encrypt_zero(level), scale, slots);
}

Ciphertext Encryptor::encrypt(const CkksEncoder& encoder, std::span<const double> values, double scale,
                              int level, std::size_t slots) const {
  rlwe::check_param_id(*ctx_, encoder.context()->param_id(), "encoder");
  const auto coeffs = encoder.scaled_coefficients(values, scale, level, slots);
  std::vector<std::int64_t> m;
  // Beyond int64 (huge scales): the general path reduces each coefficient per limb.
  if (!CkksEncoder::round_to_int64(coeffs, m)) return encrypt(encoder.encode(values, scale, level, slots));
  return Ciphertext(base_.encrypt_integer(m, level), scale, slots);
}

Ciphertext Encryptor::encrypt(const Plaintext& pt) const {
  return Ciphertext(base_.encrypt(pt), pt.scale(), pt.slots());
}

Decryptor::Decryptor(ContextPtr ctx, rlwe::SecretKey sk) : base_(std::move(ctx), std::move(sk)) {}
Decryptor::Decryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk)
    : base_(std::move(ctx), std::move(sk)) {}

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  return Plaintext(base_.decrypt(ct), ct.scale(), ct.slots());
}

}  // namespace veil::ckks
