#include "veil/bfv/flood.hpp"

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/common/rng.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::bfv {

Flooder::Flooder(ContextPtr ctx, rlwe::PublicKey pk)
    : Flooder(ctx, std::make_shared<const rlwe::PublicKey>(std::move(pk))) {}

Flooder::Flooder(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk)
    : ctx_(ctx),
      pk_(pk),
      zero_(ctx, std::move(pk)),
      eval_(ctx),
      flood_log2_(noise_bounds(ctx->params()).flood_log2) {}

std::vector<u64> Flooder::sample_flood(std::size_t& words) const {
  const std::size_t n = ctx_->n();
  const int b = flood_log2_;
  // e = U - 2^b with U uniform on b+1 bits: uniform in [-2^b, 2^b). U is drawn word by word
  // from a ChaCha20 stream keyed by a fresh CSPRNG seed.
  words = static_cast<std::size_t>(b + 1 + 63) / 64;
  const int top_bits = (b + 1) - 64 * static_cast<int>(words - 1);
  const u64 top_mask = top_bits == 64 ? ~u64{0} : ((u64{1} << top_bits) - 1);
  std::vector<u64> u(n * words);
  Prng rng(random_seed());
  for (auto& x : u) x = rng.next_u64();
  for (std::size_t j = 0; j < n; ++j) u[(words - 1) * n + j] &= top_mask;
  return u;
}

void Flooder::flood_mod(const std::vector<u64>& u, std::size_t words, const math::Modulus& q,
                        u64* out) const {
  const std::size_t n = ctx_->n();
  const u64 two64 = q.reduce128(math::u128{1} << 64);
  std::fill(out, out + n, 0);
  for (std::size_t w = words; w-- > 0;) math::mul_const_add_wide_vec(q, out, two64, u.data() + w * n, out, n);
  const u64 minus_offset = q.sub(0, q.pow(2, static_cast<u64>(flood_log2_)));
  for (std::size_t j = 0; j < n; ++j) out[j] = q.add(out[j], minus_offset);
}

void Flooder::add_flooding_noise(Ciphertext& ct) const {
  rlwe::check_param_id(*ctx_, ct.param_id(), "ciphertext");
  VEIL_REQUIRE(ct.size() == 2 && ct.level() == ctx_->max_level(),
               "flooding applies to a size-2 ciphertext at the top level "
                   << ctx_->max_level() << " (the bound assumes it), got level " << ct.level());
  const std::size_t n = ctx_->n(), limbs = ct.num_limbs();
  std::size_t words = 0;
  std::vector<u64> u = sample_flood(words);
  parallel_for(limbs, [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    rlwe::PolyData e(n);
    flood_mod(u, words, q, e.data());
    ctx_->ntt(i).forward(e.data());
    u64* c0 = ct.limb(0, i);
    math::add_vec(q, c0, e.data(), c0, n);
  });
  std::fill(u.begin(), u.end(), 0);
  ct.set_seed(std::nullopt);
}

void Flooder::flood_inplace(Ciphertext& ct) const {
  add_flooding_noise(ct);
  eval_.add_inplace(ct, zero_.encrypt_zero(ct.level()));
}

Response Flooder::finalize(Ciphertext ct, std::span<const std::uint32_t> indices) const {
  rlwe::check_param_id(*ctx_, ct.param_id(), "ciphertext");
  VEIL_REQUIRE(ct.size() == 2 && ct.level() == ctx_->max_level(),
               "the server finalises a size-2 ciphertext at the top level " << ctx_->max_level()
                                                                            << ", got level " << ct.level());
  const std::size_t n = ctx_->n(), limbs = ct.num_limbs();
  for (auto idx : indices)
    VEIL_REQUIRE(idx < n, "coefficient index " << idx << " outside the ring of N = " << n);
  const int level = ctx_->params().response_level;
  // The encryption of zero u (b, a) + (e0, e1) (rlwe/encryptor.cpp's public-key path), and
  // the flood, drawn from a fresh CSPRNG seed.
  Prng rng(random_seed());
  const auto u = rlwe::sample_ternary(rng, n);
  const auto e0 = rlwe::sample_gaussian(rng, n);
  const auto e1 = rlwe::sample_gaussian(rng, n);
  std::size_t words = 0;
  std::vector<u64> flood = sample_flood(words);
  const auto idx = rlwe::q_indices(ct.level());
  rlwe::PolyData un(limbs * n);
  rlwe::small_to_ntt(*ctx_, u, idx, un.data());
  parallel_for(limbs, [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    thread_local rlwe::PolyData tmp, fr;
    tmp.resize(n);
    fr.resize(n);
    u64* c0 = ct.limb(0, i);
    u64* c1 = ct.limb(1, i);
    math::mul_vec(q, un.data() + i * n, pk_->b.data() + i * n, tmp.data(), n);
    math::add_vec(q, c0, tmp.data(), c0, n);
    math::mul_vec(q, un.data() + i * n, pk_->a.data() + i * n, tmp.data(), n);
    math::add_vec(q, c1, tmp.data(), c1, n);
    ctx_->ntt(i).inverse(c0);
    ctx_->ntt(i).inverse(c1);
    // |e0|, |e1| <= 19 < q: q added where e is negative replaces a reduction (no branch).
    auto small = [&](std::int64_t e) {
      return static_cast<u64>(e) + (q.value() & static_cast<u64>(e >> 63));
    };
    flood_mod(flood, words, q, fr.data());
    for (std::size_t j = 0; j < n; ++j) {
      c0[j] = q.add(c0[j], q.add(fr[j], small(e0[j])));
      c1[j] = q.add(c1[j], small(e1[j]));
    }
    std::fill(fr.begin(), fr.end(), 0);
  });
  std::fill(flood.begin(), flood.end(), 0);
  // Modulus switching in coefficient form: c_i <- (c_i - [c]_{q_top}) q_top^-1, centred.
  for (int top = ct.level(); top > level; --top) {
    const math::Modulus& qt = ctx_->modulus(static_cast<std::size_t>(top));
    parallel_for(static_cast<std::size_t>(top) * 2, [&](std::size_t job) {
      const std::size_t i = job / 2, c = job % 2;
      const math::Modulus& q = ctx_->modulus(i);
      thread_local rlwe::PolyData tmp;
      tmp.resize(n);
      math::lift_centred_vec(q, ct.limb(c, static_cast<std::size_t>(top)), qt.value(), tmp.data(), n);
      math::sub_mul_const_vec(q, ct.limb(c, i), tmp.data(), ctx_->q_last_inv(top, i), ct.limb(c, i), n);
    });
  }
  Response resp;
  resp.level = level;
  resp.param_id = ctx_->param_id();
  resp.indices.assign(indices.begin(), indices.end());
  const std::size_t out_limbs = static_cast<std::size_t>(level) + 1, count = indices.size();
  resp.c0.resize(out_limbs * count);
  resp.c1.resize(out_limbs * n);
  for (std::size_t i = 0; i < out_limbs; ++i) {
    const u64* c0 = ct.limb(0, i);
    for (std::size_t k = 0; k < count; ++k) resp.c0[i * count + k] = c0[indices[k]];
    std::copy(ct.limb(1, i), ct.limb(1, i) + n, resp.c1.data() + i * n);
  }
  return resp;
}

}  // namespace veil::bfv
