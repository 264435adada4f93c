#include "veil/bfv/flood.hpp"

#include <algorithm>

#include "veil/bfv/multiword.hpp"
#include "veil/common/error.hpp"
#include "veil/common/rng.hpp"
#include "veil/common/thread_pool.hpp"

namespace veil::bfv {

Flooder::Flooder(ContextPtr ctx, rlwe::PublicKey pk)
    : Flooder(ctx, std::make_shared<const rlwe::PublicKey>(std::move(pk))) {}

Flooder::Flooder(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk)
    : ctx_(ctx), zero_(ctx, std::move(pk)), eval_(ctx), flood_log2_(noise_bounds(ctx->params()).flood_log2) {}

void Flooder::add_flooding_noise(Ciphertext& ct) const {
  rlwe::check_param_id(*ctx_, ct.param_id(), "ciphertext");
  VEIL_REQUIRE(ct.size() == 2 && ct.level() == ctx_->max_level(),
               "flooding applies to a size-2 ciphertext at the top level "
                   << ctx_->max_level() << " (the bound assumes it), got level " << ct.level());
  const std::size_t n = ctx_->n(), limbs = ct.num_limbs();
  const int b = flood_log2_;
  // e = U - 2^b with U uniform on b+1 bits: uniform in [-2^b, 2^b). U is drawn word by word
  // from a ChaCha20 stream keyed by a fresh CSPRNG seed.
  const std::size_t words = static_cast<std::size_t>(b + 1 + 63) / 64;
  const int top_bits = (b + 1) - 64 * static_cast<int>(words - 1);
  const u64 top_mask = top_bits == 64 ? ~u64{0} : ((u64{1} << top_bits) - 1);
  std::vector<u64> u(n * words);
  {
    Prng rng(random_seed());
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t w = 0; w < words; ++w) u[j * words + w] = rng.next_u64();
      u[j * words + words - 1] &= top_mask;
    }
  }
  parallel_for(limbs, [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    const u64 offset = q.pow(2, static_cast<u64>(b));
    rlwe::PolyData e(n);
    for (std::size_t j = 0; j < n; ++j)
      e[j] = q.sub(detail::mod_word(std::span<const u64>(u.data() + j * words, words), q), offset);
    ctx_->ntt(i).forward(e.data());
    u64* c0 = ct.limb(0, i);
    for (std::size_t j = 0; j < n; ++j) c0[j] = q.add(c0[j], e[j]);
  });
  std::fill(u.begin(), u.end(), 0);
  ct.set_seed(std::nullopt);
}

void Flooder::flood_inplace(Ciphertext& ct) const {
  add_flooding_noise(ct);
  eval_.add_inplace(ct, zero_.encrypt_zero(ct.level()));
}

Response Flooder::finalize(Ciphertext ct, std::span<const std::uint32_t> indices) const {
  flood_inplace(ct);
  eval_.mod_switch_to_inplace(ct, ctx_->params().response_level);
  return eval_.extract(ct, indices);
}

}  // namespace veil::bfv
