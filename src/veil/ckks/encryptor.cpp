#include "veil/ckks/encryptor.hpp"

#include "veil/ckks/sampling.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::ckks {

Encryptor::Encryptor(ContextPtr ctx, const PublicKey& pk) : ctx_(std::move(ctx)), pk_(&pk) {
  VEIL_REQUIRE(ctx_, "null context");
  VEIL_REQUIRE(pk.param_id == ctx_->param_id(), "public key was made for other parameters");
  VEIL_REQUIRE(pk.a.size() == ctx_->num_q() * ctx_->n() && pk.b.size() == pk.a.size(),
               "public key has the wrong size");
}

Encryptor::Encryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(&sk) {
  VEIL_REQUIRE(ctx_, "null context");
  VEIL_REQUIRE(sk.param_id() == ctx_->param_id(), "secret key was made for other parameters");
}

Ciphertext Encryptor::encrypt_zero(int level, double scale, std::size_t slots) const {
  return encrypt_small({}, level, scale, slots);
}

Ciphertext Encryptor::encrypt_small(std::span<const std::int64_t> m, int level, double scale,
                                    std::size_t slots) const {
  VEIL_REQUIRE(level >= 0 && level <= ctx_->max_level(), "level " << level << " outside 0.." << ctx_->max_level());
  const std::size_t n = ctx_->n();
  VEIL_REQUIRE(m.empty() || m.size() == n, "message has " << m.size() << " coefficients, need " << n);
  auto idx = q_indices(level);
  Ciphertext ct(n, 2, level, scale, slots);
  Prng rng(random_seed());
  // m + e0 in coefficient form: |e0| is a few sigma, so the sum stays far inside int64.
  auto with_message = [&](std::vector<std::int64_t> e) {
    for (std::size_t j = 0; j < m.size(); ++j) e[j] += m[j];
    return e;
  };
  if (pk_) {
    auto u = sample_ternary(rng, n);
    auto e0 = with_message(sample_gaussian(rng, n));
    auto e1 = sample_gaussian(rng, n);
    PolyData un(idx.size() * n);
    small_to_ntt(*ctx_, u, idx, un.data());
    small_to_ntt(*ctx_, e0, idx, ct.poly(0));
    small_to_ntt(*ctx_, e1, idx, ct.poly(1));
    parallel_for(idx.size(), [&](std::size_t i) {
      const auto& q = ctx_->modulus(i);
      thread_local PolyData t;
      t.resize(n);
      u64* c0 = ct.limb(0, i);
      u64* c1 = ct.limb(1, i);
      math::mul_vec(q, un.data() + i * n, pk_->b.data() + i * n, t.data(), n);
      for (std::size_t j = 0; j < n; ++j) c0[j] = q.add(c0[j], t[j]);
      math::mul_vec(q, un.data() + i * n, pk_->a.data() + i * n, t.data(), n);
      for (std::size_t j = 0; j < n; ++j) c1[j] = q.add(c1[j], t[j]);
    });
  } else {
    const Seed seed = random_seed();
    expand_uniform(*ctx_, seed, 0, idx, ct.poly(1));
    small_to_ntt(*ctx_, with_message(sample_gaussian(rng, n)), idx, ct.poly(0));
    parallel_for(idx.size(), [&](std::size_t i) {
      const auto& q = ctx_->modulus(i);
      thread_local PolyData t;
      t.resize(n);
      math::mul_vec(q, ct.limb(1, i), sk_->data().data() + i * n, t.data(), n);
      u64* c0 = ct.limb(0, i);
      for (std::size_t j = 0; j < n; ++j) c0[j] = q.sub(c0[j], t[j]);
    });
    ct.set_seed(seed);
  }
  return ct;
}

Ciphertext Encryptor::encrypt(const CkksEncoder& encoder, std::span<const double> values, double scale, int level,
                              std::size_t slots) const {
  VEIL_REQUIRE(encoder.context()->param_id() == ctx_->param_id(), "encoder was made for other parameters");
  const auto coeffs = encoder.scaled_coefficients(values, scale, level, slots);
  std::vector<std::int64_t> m;
  // Beyond int64 (huge scales): the general path reduces each coefficient per limb.
  if (!CkksEncoder::round_to_int64(coeffs, m)) return encrypt(encoder.encode(values, scale, level, slots));
  return encrypt_small(m, level, scale, slots);
}

Ciphertext Encryptor::encrypt(const Plaintext& pt) const {
  VEIL_REQUIRE(pt.n() == ctx_->n() && pt.level() >= 0 && pt.level() <= ctx_->max_level(),
               "plaintext does not match the context");
  Ciphertext ct = encrypt_zero(pt.level(), pt.scale(), pt.slots());
  const std::size_t n = ctx_->n();
  parallel_for(ct.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    const u64* m = pt.limb(i);
    u64* c0 = ct.limb(0, i);
    for (std::size_t j = 0; j < n; ++j) c0[j] = q.add(c0[j], m[j]);
  });
  return ct;
}

Decryptor::Decryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  VEIL_REQUIRE(ctx_, "null context");
  VEIL_REQUIRE(sk.param_id() == ctx_->param_id(), "secret key was made for other parameters");
}

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  VEIL_REQUIRE(ct.n() == ctx_->n() && ct.size() >= 2 && ct.level() >= 0 && ct.level() <= ctx_->max_level(),
               "ciphertext does not match the context");
  const std::size_t n = ctx_->n();
  Plaintext pt(n, ct.level(), ct.scale(), ct.slots());
  parallel_for(ct.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    const u64* s = sk_.data().data() + i * n;
    u64* m = pt.limb(i);
    // Horner: m = c0 + s*(c1 + s*(c2 + ...)).
    const std::size_t top = ct.size() - 1;
    std::copy(ct.limb(top, i), ct.limb(top, i) + n, m);
    for (std::size_t c = top; c-- > 0;) {
      const u64* cc = ct.limb(c, i);
      math::mul_vec(q, m, s, m, n);
      for (std::size_t j = 0; j < n; ++j) m[j] = q.add(m[j], cc[j]);
    }
  });
  return pt;
}

}  // namespace veil::ckks
