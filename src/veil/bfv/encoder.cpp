#include "veil/bfv/encoder.hpp"

#include "veil/common/error.hpp"

namespace veil::bfv {

BatchEncoder::BatchEncoder(ContextPtr ctx) : ctx_(std::move(ctx)) {
  VEIL_REQUIRE(ctx_, "null context");
  ctx_->t_ntt();  // throws the named error without batching
}

Plaintext BatchEncoder::encode(std::span<const u64> values) const {
  const std::size_t n = ctx_->n();
  VEIL_REQUIRE(values.size() <= n, values.size() << " values exceed the " << n << " slots");
  std::vector<u64> c(n, 0);
  for (std::size_t i = 0; i < values.size(); ++i) {
    VEIL_REQUIRE(values[i] < ctx_->t(), "slot value " << i << " = " << values[i] << " is not reduced mod t");
    c[i] = values[i];
  }
  ctx_->t_ntt().inverse(c.data());
  return Plaintext(*ctx_, std::move(c));
}

std::vector<u64> BatchEncoder::decode(const Plaintext& p) const {
  check_plaintext(*ctx_, p, "plaintext");
  return decode(p.coeffs());
}

std::vector<u64> BatchEncoder::decode(std::span<const u64> coeffs) const {
  VEIL_REQUIRE(coeffs.size() == ctx_->n(),
               "decoding needs all N = " << ctx_->n() << " coefficients, got " << coeffs.size());
  std::vector<u64> v(coeffs.begin(), coeffs.end());
  for (u64 x : v) VEIL_REQUIRE(x < ctx_->t(), "coefficient not reduced mod t");
  ctx_->t_ntt().forward(v.data());
  return v;
}

}  // namespace veil::bfv
