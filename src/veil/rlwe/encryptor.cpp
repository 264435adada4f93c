#include "veil/rlwe/encryptor.hpp"

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::rlwe {

Encryptor::Encryptor(ContextPtr ctx, PublicKey pk)
    : Encryptor(std::move(ctx), std::make_shared<const PublicKey>(std::move(pk))) {}
Encryptor::Encryptor(ContextPtr ctx, SecretKey sk)
    : Encryptor(std::move(ctx), std::make_shared<const SecretKey>(std::move(sk))) {}

Encryptor::Encryptor(ContextPtr ctx, std::shared_ptr<const PublicKey> pk)
    : ctx_(std::move(ctx)), pk_(std::move(pk)) {
  VEIL_REQUIRE(ctx_, "null context");
  check_public_key();
}

Encryptor::Encryptor(ContextPtr ctx, std::shared_ptr<const SecretKey> sk)
    : ctx_(std::move(ctx)), sk_(std::move(sk)) {
  VEIL_REQUIRE(ctx_, "null context");
  check_secret_key();
}

void Encryptor::check_public_key() const {
  VEIL_REQUIRE(pk_, "null public key");
  check_param_id(*ctx_, pk_->param_id, "public key");
  VEIL_REQUIRE(pk_->a.size() == ctx_->num_q() * ctx_->n() && pk_->b.size() == pk_->a.size(),
               "public key has the wrong size");
}

void Encryptor::check_secret_key() const {
  VEIL_REQUIRE(sk_, "null secret key");
  check_param_id(*ctx_, sk_->param_id(), "secret key");
  VEIL_REQUIRE(sk_->data().size() == (ctx_->num_q() + ctx_->num_p()) * ctx_->n(),
               "secret key has the wrong size");
}

Ciphertext Encryptor::encrypt_integer(std::span<const std::int64_t> m, int level) const {
  VEIL_REQUIRE(level >= 0 && level <= ctx_->max_level(),
               "level " << level << " outside 0.." << ctx_->max_level());
  const std::size_t n = ctx_->n();
  VEIL_REQUIRE(m.empty() || m.size() == n, "message has " << m.size() << " coefficients, need " << n);
  auto idx = q_indices(level);
  Ciphertext ct(*ctx_, 2, level);
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
      math::add_vec(q, c0, t.data(), c0, n);
      math::mul_vec(q, un.data() + i * n, pk_->a.data() + i * n, t.data(), n);
      math::add_vec(q, c1, t.data(), c1, n);
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
      math::sub_vec(q, c0, t.data(), c0, n);
    });
    ct.set_seed(seed);
  }
  return ct;
}

Ciphertext Encryptor::encrypt(const Plaintext& pt) const {
  check_param_id(*ctx_, pt.param_id(), "plaintext");
  VEIL_REQUIRE(pt.n() == ctx_->n() && pt.level() >= 0 && pt.level() <= ctx_->max_level(),
               "plaintext does not match the context");
  Ciphertext ct = encrypt_zero(pt.level());
  const std::size_t n = ctx_->n();
  parallel_for(ct.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    const u64* m = pt.limb(i);
    u64* c0 = ct.limb(0, i);
    math::add_vec(q, c0, m, c0, n);
  });
  return ct;
}

Decryptor::Decryptor(ContextPtr ctx, SecretKey sk)
    : Decryptor(std::move(ctx), std::make_shared<const SecretKey>(std::move(sk))) {}

Decryptor::Decryptor(ContextPtr ctx, std::shared_ptr<const SecretKey> sk)
    : ctx_(std::move(ctx)), sk_(std::move(sk)) {
  VEIL_REQUIRE(ctx_, "null context");
  VEIL_REQUIRE(sk_, "null secret key");
  check_param_id(*ctx_, sk_->param_id(), "secret key");
  VEIL_REQUIRE(sk_->data().size() == (ctx_->num_q() + ctx_->num_p()) * ctx_->n(),
               "secret key has the wrong size");
}

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  check_param_id(*ctx_, ct.param_id(), "ciphertext");
  VEIL_REQUIRE(ct.n() == ctx_->n() && ct.size() >= 2 && ct.level() >= 0 && ct.level() <= ctx_->max_level(),
               "ciphertext does not match the context");
  const std::size_t n = ctx_->n();
  Plaintext pt(*ctx_, ct.level());
  parallel_for(ct.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    const u64* s = sk_->data().data() + i * n;
    u64* m = pt.limb(i);
    // Horner: m = c0 + s*(c1 + s*(c2 + ...)).
    const std::size_t top = ct.size() - 1;
    std::copy(ct.limb(top, i), ct.limb(top, i) + n, m);
    for (std::size_t c = top; c-- > 0;) {
      const u64* cc = ct.limb(c, i);
      math::mul_vec(q, m, s, m, n);
      math::add_vec(q, m, cc, m, n);
    }
  });
  return pt;
}

std::vector<std::int64_t> Decryptor::decrypt_integer(const Ciphertext& ct) const {
  VEIL_REQUIRE(ct.level() == 0,
               "integer decryption reads one prime: switch the ciphertext to level 0 first (it is at "
                   << ct.level() << ")");
  Plaintext pt = decrypt(ct);
  const std::size_t n = ctx_->n();
  u64* m = pt.limb(0);
  ctx_->ntt(0).inverse(m);
  const u64 q = ctx_->modulus(0).value();
  std::vector<std::int64_t> out(n);
  for (std::size_t j = 0; j < n; ++j) {
    out[j] = m[j] > q / 2 ? -static_cast<std::int64_t>(q - m[j]) : static_cast<std::int64_t>(m[j]);
  }
  return out;
}

}  // namespace veil::rlwe
