#include "veil/bfv/plaintext.hpp"

#include "veil/common/error.hpp"

namespace veil::bfv {

Plaintext::Plaintext(const BfvContext& ctx, std::vector<u64> coeffs)
    : coeffs_(std::move(coeffs)), param_id_(ctx.param_id()) {
  VEIL_REQUIRE(coeffs_.size() <= ctx.n(),
               "plaintext has " << coeffs_.size() << " coefficients, the ring holds N = " << ctx.n());
  for (std::size_t i = 0; i < coeffs_.size(); ++i)
    VEIL_REQUIRE(coeffs_[i] < ctx.t(), "plaintext coefficient " << i << " = " << coeffs_[i]
                                                                << " is not reduced mod t = " << ctx.t());
  coeffs_.resize(ctx.n(), 0);
}

Plaintext Plaintext::from_signed(const BfvContext& ctx, std::span<const std::int64_t> coeffs) {
  std::vector<u64> c(coeffs.size());
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = ctx.t_mod().from_signed(coeffs[i]);
  return Plaintext(ctx, std::move(c));
}

void check_plaintext(const BfvContext& ctx, const Plaintext& p, const char* what) {
  rlwe::check_param_id(ctx, p.param_id(), what);
  VEIL_REQUIRE(p.n() == ctx.n(), what << " has " << p.n() << " coefficients, expected N = " << ctx.n());
}

}  // namespace veil::bfv
