#include "veil/bfv/evaluator.hpp"

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::bfv {

Evaluator::Evaluator(ContextPtr ctx) : ctx_(std::move(ctx)) { VEIL_REQUIRE(ctx_, "null context"); }

void Evaluator::check(const Ciphertext& a, const char* what) const {
  rlwe::check_param_id(*ctx_, a.param_id(), what);
  VEIL_REQUIRE(a.n() == ctx_->n() && a.size() == 2 && a.level() >= 0 && a.level() <= ctx_->max_level(),
               what << " is not a BFV ciphertext of these parameters (size " << a.size() << ", level "
                    << a.level() << ")");
}

void Evaluator::add_or_sub(Ciphertext& a, const Ciphertext& b, bool subtract) const {
  check(a, "first operand");
  check(b, "second operand");
  VEIL_REQUIRE(a.level() == b.level(), "levels differ (" << a.level() << " and " << b.level()
                                                         << "): switch the higher one down first");
  const std::size_t n = ctx_->n();
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    for (std::size_t c = 0; c < 2; ++c) {
      u64* x = a.limb(c, i);
      const u64* y = b.limb(c, i);
      if (subtract)
        math::sub_vec(q, x, y, x, n);
      else
        math::add_vec(q, x, y, x, n);
    }
  });
  a.set_seed(std::nullopt);
}

void Evaluator::add_inplace(Ciphertext& a, const Ciphertext& b) const { add_or_sub(a, b, false); }

void Evaluator::sub_inplace(Ciphertext& a, const Ciphertext& b) const { add_or_sub(a, b, true); }

void Evaluator::add_scaled_plain(Ciphertext& a, const Plaintext& p, bool negate) const {
  check(a, "ciphertext");
  check_plaintext(*ctx_, p, "plaintext");
  const std::size_t n = ctx_->n();
  const int level = a.level();
  rlwe::PolyData scaled(a.num_limbs() * n);
  ctx_->scale_plaintext(level, p.coeffs(), scaled.data());
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    u64* tmp = scaled.data() + i * n;
    ctx_->ntt(i).forward(tmp);
    u64* c0 = a.limb(0, i);
    if (negate) {
      math::sub_vec(q, c0, tmp, c0, n);
    } else {
      math::add_vec(q, c0, tmp, c0, n);
    }
  });
}

void Evaluator::add_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_scaled_plain(a, p, false); }
void Evaluator::sub_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_scaled_plain(a, p, true); }

PreparedPlaintext Evaluator::prepare(const Plaintext& p, int level) const {
  check_plaintext(*ctx_, p, "plaintext");
  if (level < 0) level = ctx_->max_level();
  VEIL_REQUIRE(level <= ctx_->max_level(), "level " << level << " outside 0.." << ctx_->max_level());
  rlwe::Plaintext out(*ctx_, level);
  const std::size_t n = ctx_->n();
  const math::Modulus& tm = ctx_->t_mod();
  parallel_for(out.num_limbs(), [&](std::size_t i) {
    u64* o = out.limb(i);
    // Centred mod t, then reduced mod q_i (a kernel block of the hybrid preprocessing is
    // made this way at every use when the server's budget does not keep it).
    math::lift_centred_vec(ctx_->modulus(i), p.coeffs().data(), tm.value(), o, n);
    ctx_->ntt(i).forward(o);
  });
  return PreparedPlaintext(std::move(out));
}

void Evaluator::multiply_plain_inplace(Ciphertext& a, const PreparedPlaintext& p) const {
  check(a, "ciphertext");
  rlwe::check_param_id(*ctx_, p.param_id(), "prepared plaintext");
  VEIL_REQUIRE(p.level() >= a.level(),
               "prepared plaintext is at level " << p.level() << ", below the ciphertext's " << a.level());
  const std::size_t n = ctx_->n();
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    for (std::size_t c = 0; c < 2; ++c) math::mul_vec(q, a.limb(c, i), p.limb(i), a.limb(c, i), n);
  });
  a.set_seed(std::nullopt);
}

Ciphertext Evaluator::multiply_plain(const Ciphertext& a, const PreparedPlaintext& p) const {
  Ciphertext r = a;
  multiply_plain_inplace(r, p);
  return r;
}

Ciphertext Evaluator::multiply_accumulate(std::span<const Ciphertext* const> cts,
                                          std::span<const PreparedPlaintext* const> pts) const {
  VEIL_REQUIRE(!cts.empty() && cts.size() == pts.size(),
               "multiply_accumulate needs as many plaintexts as ciphertexts (at least one), got "
                   << cts.size() << " and " << pts.size());
  const int level = cts[0]->level();
  for (std::size_t k = 0; k < cts.size(); ++k) {
    check(*cts[k], "ciphertext");
    VEIL_REQUIRE(cts[k]->level() == level, "ciphertexts at different levels in multiply_accumulate");
    rlwe::check_param_id(*ctx_, pts[k]->param_id(), "prepared plaintext");
    VEIL_REQUIRE(pts[k]->level() >= level, "prepared plaintext below the ciphertexts' level");
  }
  Ciphertext out(*ctx_, 2, level);
  const std::size_t n = ctx_->n();
  // Both polynomials at once against each plaintext, reduced once per coefficient:
  // math::dot2_vec, the key-switching inner product (its IFMA and AVX2 kernels; the scalar
  // 128-bit loop this replaced was a fifth of the hybrid preprocessing). Tasks of
  // kChunk coefficients of one limb spread a few limbs over both threads.
  constexpr std::size_t kChunk = 1024;
  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  const std::size_t terms = cts.size();
  parallel_for(out.num_limbs() * chunks, [&](std::size_t job) {
    const std::size_t i = job / chunks, begin = (job % chunks) * kChunk, len = std::min(kChunk, n - begin);
    std::vector<const u64*> w(terms), x0(terms), x1(terms);
    for (std::size_t k = 0; k < terms; ++k) {
      w[k] = pts[k]->limb(i) + begin;
      x0[k] = cts[k]->limb(0, i) + begin;
      x1[k] = cts[k]->limb(1, i) + begin;
    }
    math::dot2_vec(ctx_->modulus(i), terms, w.data(), nullptr, x0.data(), x1.data(), out.limb(0, i) + begin,
                   out.limb(1, i) + begin, len);
  });
  return out;
}

void Evaluator::mod_switch_to_inplace(Ciphertext& a, int level) const {
  check(a, "ciphertext");
  VEIL_REQUIRE(level >= 0 && level <= a.level(),
               "cannot switch a ciphertext from level " << a.level() << " to " << level);
  const std::size_t n = ctx_->n();
  while (a.level() > level) {
    const int top = a.level();
    const math::Modulus& qt = ctx_->modulus(static_cast<std::size_t>(top));
    for (std::size_t c = 0; c < 2; ++c) {
      // r = [c]_{q_top} centred; c' = (c - r) / q_top exactly = round(c / q_top).
      rlwe::PolyData r(a.limb(c, top), a.limb(c, top) + n);
      ctx_->ntt(top).inverse(r.data());
      parallel_for(static_cast<std::size_t>(top), [&](std::size_t i) {
        const math::Modulus& q = ctx_->modulus(i);
        thread_local rlwe::PolyData tmp;
        tmp.resize(n);
        math::lift_centred_vec(q, r.data(), qt.value(), tmp.data(), n);  // centred r mod q_i
        ctx_->ntt(i).forward(tmp.data());
        math::sub_mul_const_vec(q, a.limb(c, i), tmp.data(), ctx_->q_last_inv(top, i), a.limb(c, i), n);
      });
    }
    a.drop_to_level(top - 1);
  }
}

Response Evaluator::extract(const Ciphertext& a, std::span<const std::uint32_t> indices) const {
  check(a, "ciphertext");
  const std::size_t n = ctx_->n(), limbs = a.num_limbs(), count = indices.size();
  for (auto idx : indices)
    VEIL_REQUIRE(idx < n, "coefficient index " << idx << " outside the ring of N = " << n);
  Response r;
  r.level = a.level();
  r.param_id = ctx_->param_id();
  r.indices.assign(indices.begin(), indices.end());
  r.c0.resize(limbs * count);
  r.c1.assign(a.poly(1), a.poly(1) + limbs * n);
  parallel_for(limbs, [&](std::size_t i) {
    ctx_->ntt(i).inverse(r.c1.data() + i * n);
    rlwe::PolyData c0(a.limb(0, i), a.limb(0, i) + n);
    ctx_->ntt(i).inverse(c0.data());
    u64* o = r.c0.data() + i * count;
    for (std::size_t k = 0; k < count; ++k) o[k] = c0[indices[k]];
  });
  return r;
}

}  // namespace veil::bfv
