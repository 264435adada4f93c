#include "veil/bfv/context.hpp"

#include <algorithm>
#include <cstring>

#include "veil/bfv/multiword.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::bfv {

namespace {

// rlwe::Context validates the RLWE part; the BFV part is checked first so a bad t is
// reported as such. t and the flooding parameters join the parameter id.
rlwe::Parameters checked(const BfvParameters& p) {
  const std::string why = p.validate();
  VEIL_REQUIRE(why.empty(), "invalid BFV parameters: " << why);
  rlwe::Parameters base = p;
  std::uint64_t l1_bits = 0;
  static_assert(sizeof(double) == sizeof(std::uint64_t));
  std::memcpy(&l1_bits, &p.max_l1_norm, sizeof l1_bits);
  base.scheme_id_words = {0x424656ull /* "BFV" */, p.t, l1_bits, static_cast<std::uint64_t>(p.flood_bits),
                          static_cast<std::uint64_t>(p.response_level)};
  return base;
}

}  // namespace

BfvContext::BfvContext(BfvParameters params)
    : rlwe::Context(checked(params)), bfv_params_(std::move(params)), t_mod_(bfv_params_.t) {
  if (bfv_params_.batching()) t_ntt_ = std::make_unique<math::NttTables>(bfv_params_.log_n, t_mod_);
  const std::size_t nq = num_q();
  // Q < 2^(61 nq); two spare words for the sums of exact decryption.
  words_ = nq + 2;
  delta_mod_.resize(nq);
  q_words_.resize(nq);
  delta_words_.resize(nq);
  qhat_words_.resize(nq);
  for (std::size_t l = 0; l < nq; ++l) {
    const std::vector<u64> primes(bfv_params_.q.begin(), bfv_params_.q.begin() + l + 1);
    q_words_[l] = detail::product(primes, words_);
    delta_words_[l] = q_words_[l];
    q_mod_t_.push_back(detail::div_word(delta_words_[l], bfv_params_.t));
    for (std::size_t i = 0; i <= l; ++i) {
      delta_mod_[l].push_back(detail::mod_word(delta_words_[l], modulus(i)));
      std::vector<u64> others;
      for (std::size_t j = 0; j <= l; ++j)
        if (j != i) others.push_back(primes[j]);
      qhat_words_[l].push_back(detail::product(others, words_));
    }
  }
}

void BfvContext::scale_plaintext(int level, const std::vector<u64>& p, u64* out) const {
  const std::size_t n = this->n();
  std::vector<u64> frac(n);
  constexpr std::size_t kChunk = 1024;
  parallel_for((n + kChunk - 1) / kChunk, [&](std::size_t c) {
    for (std::size_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); ++j)
      frac[j] = scale_fraction(level, p[j]);
  });
  parallel_for(static_cast<std::size_t>(level) + 1, [&](std::size_t i) {
    math::mul_const_add_wide_vec(modulus(i), p.data(), delta_mod_[level][i], frac.data(), out + i * n, n);
  });
}

const math::NttTables& BfvContext::t_ntt() const {
  VEIL_REQUIRE(t_ntt_, "SIMD batching needs a prime t = 1 mod 2N; t = "
                           << t() << " only allows coefficient encoding (pick t with bfv::plaintext_prime)");
  return *t_ntt_;
}

}  // namespace veil::bfv
