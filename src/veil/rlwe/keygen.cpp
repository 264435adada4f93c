#include "veil/rlwe/keygen.hpp"

#include <sodium.h>

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::rlwe {

SecretKey secret_key_from(const Context& ctx, std::span<const std::int64_t> coeffs) {
  VEIL_REQUIRE(coeffs.size() == ctx.n(),
               "a secret of " << coeffs.size() << " coefficients for degree " << ctx.n());
  const std::size_t total = ctx.num_q() + ctx.num_p();
  std::vector<std::size_t> all(total);
  for (std::size_t i = 0; i < total; ++i) all[i] = i;
  SecretKey sk;
  sk.data().resize(total * ctx.n());
  small_to_ntt(ctx, coeffs, all, sk.data().data());
  sk.set_param_id(ctx.param_id());
  return sk;
}

KeyGenerator::KeyGenerator(ContextPtr ctx) : ctx_(std::move(ctx)) {
  VEIL_REQUIRE(ctx_, "null context");
  Prng rng(random_seed());
  auto s = sample_ternary(rng, ctx_->n());
  sk_ = secret_key_from(*ctx_, s);
  sodium_memzero(s.data(), s.size() * sizeof(std::int64_t));
}

KeyGenerator::KeyGenerator(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  VEIL_REQUIRE(ctx_, "null context");
  VEIL_REQUIRE(sk.param_id() == ctx_->param_id(), "secret key was made for other parameters");
  VEIL_REQUIRE(sk.data().size() == (ctx_->num_q() + ctx_->num_p()) * ctx_->n(),
               "secret key has the wrong size");
}

int KeyGenerator::resolve_level(int level) const {
  if (level < 0) return ctx_->max_level();
  VEIL_REQUIRE(level <= ctx_->max_level(),
               "key level " << level << " exceeds the top level " << ctx_->max_level());
  return level;
}

std::vector<u64> KeyGenerator::secret_on(int level, std::uint32_t galois_elt) const {
  const std::size_t n = ctx_->n();
  auto idx = qp_indices(*ctx_, level);
  std::vector<u64> out(idx.size() * n);
  const std::vector<std::uint32_t>* perm = galois_elt == 1 ? nullptr : &ctx_->ntt_permutation(galois_elt);
  for (std::size_t k = 0; k < idx.size(); ++k) {
    const u64* src = sk_.data().data() + idx[k] * n;
    u64* dst = out.data() + k * n;
    if (perm) {
      for (std::size_t j = 0; j < n; ++j) dst[j] = src[(*perm)[j]];
    } else {
      std::copy(src, src + n, dst);
    }
  }
  return out;
}

PublicKey KeyGenerator::create_public_key() const {
  const std::size_t n = ctx_->n();
  const int level = ctx_->max_level();
  auto idx = q_indices(level);
  PublicKey pk;
  pk.param_id = ctx_->param_id();
  pk.seed = random_seed();
  pk.a.resize(idx.size() * n);
  pk.b.resize(idx.size() * n);
  expand_uniform(*ctx_, pk.seed, 0, idx, pk.a.data());
  Prng rng(random_seed());
  auto e = sample_gaussian(rng, n);
  small_to_ntt(*ctx_, e, idx, pk.b.data());
  parallel_for(idx.size(), [&](std::size_t k) {
    const auto& q = ctx_->modulus(idx[k]);
    PolyData as(n);
    math::mul_vec(q, pk.a.data() + k * n, sk_.data().data() + idx[k] * n, as.data(), n);
    math::sub_vec(q, pk.b.data() + k * n, as.data(), pk.b.data() + k * n, n);
    sodium_memzero(as.data(), n * sizeof(u64));
  });
  return pk;
}

KeySwitchKey KeyGenerator::create_switch_key(const u64* s_prime, int level) const {
  VEIL_REQUIRE(ctx_->num_p() > 0,
               "these parameters have no special primes, so no key-switching (relinearisation or Galois) "
               "keys can be made; add special primes to the parameters");
  const std::size_t n = ctx_->n();
  auto idx = qp_indices(*ctx_, level);
  const std::size_t limbs = idx.size();
  KeySwitchKey key;
  key.level = level;
  key.param_id = ctx_->param_id();
  key.seed = random_seed();
  const int digits = ctx_->num_digits(level);
  const auto primes = prime_values(*ctx_, idx);
  Prng rng(random_seed());
  // Scratch in the polynomial block cache: without it every key zero-filled (and, on a
  // fresh heap, page-faulted) two buffers of (level + 1 + K) limbs per digit.
  PolyData a(limbs * n), b(limbs * n);
  for (int j = 0; j < digits; ++j) {
    // Digit j's uniform part uses its own family of ChaCha20 streams.
    expand_uniform(*ctx_, key.seed, (static_cast<std::uint64_t>(j) + 1) << 32, idx, a.data());
    auto e = sample_gaussian(rng, n);
    small_to_ntt(*ctx_, e, idx, b.data());
    const std::size_t d0 = ctx_->digit_begin(j), d1 = ctx_->digit_end(j, level);
    key.a.push_back(KeyPoly::unset(n, primes));
    key.b.push_back(KeyPoly::unset(n, primes));
    parallel_for(limbs, [&](std::size_t k) {
      const std::size_t pi = idx[k];
      const auto& q = ctx_->modulus(pi);
      const u64* ak = a.data() + k * n;
      u64* bk = b.data() + k * n;
      // b = e - a s (+ P [Q/Q_j] [(Q/Q_j)^-1]_{Q_j} s' on the digit's own limbs, where that
      // factor is P mod q), in tiles that stay in the L1 cache.
      constexpr std::size_t kTile = 512;
      u64 t[kTile];
      for (std::size_t x = 0; x < n; x += kTile) {
        const std::size_t len = std::min(kTile, n - x);
        math::mul_vec(q, ak + x, sk_.data().data() + pi * n + x, t, len);
        math::sub_vec(q, bk + x, t, bk + x, len);
        if (pi >= d0 && pi < d1) {
          math::mul_const_vec(q, s_prime + k * n + x, ctx_->p_mod_q(pi), t, len);
          math::add_vec(q, bk + x, t, bk + x, len);
        }
      }
      sodium_memzero(t, sizeof(t));  // held products of the secret
      key.a.back().set(k, ak);
      key.b.back().set(k, bk);
    });
  }
  return key;
}

RelinKeys KeyGenerator::create_relin_keys(int level) const {
  level = resolve_level(level);
  auto s = secret_on(level);
  const std::size_t n = ctx_->n();
  auto idx = qp_indices(*ctx_, level);
  for (std::size_t k = 0; k < idx.size(); ++k) {
    const auto& q = ctx_->modulus(idx[k]);
    for (std::size_t j = 0; j < n; ++j) s[k * n + j] = q.mul(s[k * n + j], s[k * n + j]);
  }
  RelinKeys rk;
  rk.key = create_switch_key(s.data(), level);
  sodium_memzero(s.data(), s.size() * sizeof(u64));
  return rk;
}

KeySwitchKey KeyGenerator::create_galois_key(std::uint32_t galois_elt, int level) const {
  level = resolve_level(level);
  auto s = secret_on(level, galois_elt);
  auto key = create_switch_key(s.data(), level);
  sodium_memzero(s.data(), s.size() * sizeof(u64));
  return key;
}

GaloisKeys KeyGenerator::create_galois_keys(const std::vector<int>& steps, bool conjugate, int level) const {
  level = resolve_level(level);
  GaloisKeys gk;
  for (int step : steps) {
    const std::uint32_t g = ctx_->galois_element(step);
    if (g == 1 || gk.has(g)) continue;  // rotation by 0 (mod N/2) needs no key
    gk.keys.emplace(g, create_galois_key(g, level));
  }
  if (conjugate)
    gk.keys.emplace(ctx_->conjugation_element(), create_galois_key(ctx_->conjugation_element(), level));
  return gk;
}

}  // namespace veil::rlwe
