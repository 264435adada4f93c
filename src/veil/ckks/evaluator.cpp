#include "veil/ckks/evaluator.hpp"

#include <cmath>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::ckks {

Evaluator::Evaluator(ContextPtr ctx) : ctx_(std::move(ctx)), ks_(ctx_) { VEIL_REQUIRE(ctx_, "null context"); }

void Evaluator::check(const Ciphertext& a, const char* what) const {
  rlwe::check_param_id(*ctx_, a.param_id(), what);
  VEIL_REQUIRE(a.size() >= 2 && a.n() == ctx_->n() && a.level() >= 0 && a.level() <= ctx_->max_level() &&
                   a.data().size() == a.size() * a.num_limbs() * a.n(),
               what << " is not valid for these encryption parameters");
}

void Evaluator::check(const Plaintext& p, const char* what) const {
  rlwe::check_param_id(*ctx_, p.param_id(), what);
  VEIL_REQUIRE(p.n() == ctx_->n() && p.level() >= 0 && p.level() <= ctx_->max_level() &&
                   p.data().size() == p.num_limbs() * p.n(),
               what << " is not valid for these encryption parameters");
}

void Evaluator::check_scales(double a, double b) const {
  VEIL_REQUIRE(std::fabs(a - b) <= 1e-9 * std::max(a, b),
               "scale mismatch: 2^" << std::log2(a) << " vs 2^" << std::log2(b)
                                    << " (rescale or multiply by a constant to align them)");
}

// Drops whichever operand sits higher; `b` may be redirected to a lowered copy in tmp.
void Evaluator::match_levels(Ciphertext& a, Ciphertext& tmp, const Ciphertext*& b) const {
  if (a.level() > b->level()) {
    a.drop_to_level(b->level());
  } else if (b->level() > a.level()) {
    tmp = *b;
    tmp.drop_to_level(a.level());
    b = &tmp;
  }
}

namespace {
template <class F>
void for_limbs(const CkksContext& ctx, std::size_t limbs, F&& f) {
  parallel_for(limbs, [&](std::size_t i) { f(i, ctx.modulus(i), ctx.n()); });
}
}  // namespace

void Evaluator::add_or_sub(Ciphertext& a, const Ciphertext& b, bool subtract) const {
  check(a, "first operand");
  check(b, "second operand");
  VEIL_REQUIRE(a.slots() == b.slots(), "slot count mismatch: " << a.slots() << " vs " << b.slots());
  check_scales(a.scale(), b.scale());
  Ciphertext tmp;
  const Ciphertext* bp = &b;
  match_levels(a, tmp, bp);
  a.set_seed(std::nullopt);
  if (bp->size() > a.size()) {
    Ciphertext grown(*ctx_, bp->size(), a.level(), a.scale(), a.slots());
    auto tail = std::copy(a.data().begin(), a.data().end(), grown.data().begin());
    std::fill(tail, grown.data().end(), 0);
    a = std::move(grown);
  }
  for (std::size_t c = 0; c < bp->size(); ++c) {
    for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
      u64* x = a.limb(c, i);
      const u64* y = bp->limb(c, i);
      if (subtract) {
        math::sub_vec(q, x, y, x, n);
      } else {
        math::add_vec(q, x, y, x, n);
      }
    });
  }
}

void Evaluator::add_inplace(Ciphertext& a, const Ciphertext& b) const { add_or_sub(a, b, false); }

Ciphertext Evaluator::add(const Ciphertext& a, const Ciphertext& b) const {
  Ciphertext r = a;
  add_inplace(r, b);
  return r;
}

void Evaluator::negate_inplace(Ciphertext& a) const {
  check(a, "operand");
  a.set_seed(std::nullopt);
  for (std::size_t c = 0; c < a.size(); ++c) {
    for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
      u64* x = a.limb(c, i);
      for (std::size_t j = 0; j < n; ++j) x[j] = q.neg(x[j]);
    });
  }
}

void Evaluator::sub_inplace(Ciphertext& a, const Ciphertext& b) const { add_or_sub(a, b, true); }

Ciphertext Evaluator::sub(const Ciphertext& a, const Ciphertext& b) const {
  Ciphertext r = a;
  sub_inplace(r, b);
  return r;
}

void Evaluator::add_or_sub_plain(Ciphertext& a, const Plaintext& p, bool subtract) const {
  check(a, "ciphertext");
  check(p, "plaintext");
  check_scales(a.scale(), p.scale());
  if (a.level() > p.level()) a.drop_to_level(p.level());
  for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
    u64* x = a.limb(0, i);
    const u64* y = p.limb(i);
    if (subtract) {
      math::sub_vec(q, x, y, x, n);
    } else {
      math::add_vec(q, x, y, x, n);
    }
  });
}

void Evaluator::add_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_or_sub_plain(a, p, false); }
void Evaluator::sub_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_or_sub_plain(a, p, true); }

void Evaluator::add_const_inplace(Ciphertext& a, double c) const {
  check(a, "ciphertext");
  // A constant polynomial is the same value in every NTT slot.
  for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
    const u64 v = q.from_double(c * a.scale());
    u64* x = a.limb(0, i);
    for (std::size_t j = 0; j < n; ++j) x[j] = q.add(x[j], v);
  });
}

void Evaluator::multiply_inplace(Ciphertext& a, const Ciphertext& b) const {
  check(a, "first operand");
  check(b, "second operand");
  VEIL_REQUIRE(a.size() == 2 && b.size() == 2, "multiply needs relinearised (size-2) operands; got sizes "
                                                   << a.size() << " and " << b.size());
  VEIL_REQUIRE(a.slots() == b.slots(), "slot count mismatch: " << a.slots() << " vs " << b.slots());
  Ciphertext tmp;
  const Ciphertext* bp = &b;
  match_levels(a, tmp, bp);
  const double scale = a.scale() * bp->scale();
  VEIL_REQUIRE(std::log2(scale) < ctx_->q_base(a.level()).log2_product() - 1,
               "product scale 2^" << std::log2(scale) << " exceeds the modulus at level " << a.level()
                                  << " (rescale first)");
  Ciphertext out(*ctx_, 3, a.level(), scale, a.slots());
  for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
    math::tensor_vec(q, a.limb(0, i), a.limb(1, i), bp->limb(0, i), bp->limb(1, i), out.limb(0, i),
                     out.limb(1, i), out.limb(2, i), n);
  });
  a = std::move(out);
}

Ciphertext Evaluator::multiply(const Ciphertext& a, const Ciphertext& b) const {
  Ciphertext r = a;
  multiply_inplace(r, b);
  return r;
}

void Evaluator::square_inplace(Ciphertext& a) const { multiply_inplace(a, a); }

void Evaluator::multiply_relin_inplace(Ciphertext& a, const Ciphertext& b, const RelinKeys& rk) const {
  multiply_inplace(a, b);
  relinearize_inplace(a, rk);
}

void Evaluator::multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const {
  check(a, "ciphertext");
  check(p, "plaintext");
  if (a.level() > p.level()) a.drop_to_level(p.level());
  const double scale = a.scale() * p.scale();
  VEIL_REQUIRE(std::log2(scale) < ctx_->q_base(a.level()).log2_product() - 1,
               "product scale 2^" << std::log2(scale) << " exceeds the modulus at level " << a.level()
                                  << " (rescale first)");
  a.set_seed(std::nullopt);
  for (std::size_t c = 0; c < a.size(); ++c) {
    for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
      u64* x = a.limb(c, i);
      const u64* y = p.limb(i);
      for (std::size_t j = 0; j < n; ++j) x[j] = q.mul(x[j], y[j]);
    });
  }
  a.set_scale(scale);
}

void Evaluator::multiply_const_inplace(Ciphertext& a, double c, double const_scale) const {
  check(a, "ciphertext");
  if (const_scale == 0) const_scale = static_cast<double>(ctx_->modulus(a.level()).value());
  VEIL_REQUIRE(const_scale >= 1 && std::isfinite(const_scale), "constant scale must be >= 1");
  const double scale = a.scale() * const_scale;
  VEIL_REQUIRE(std::log2(scale) < ctx_->q_base(a.level()).log2_product() - 1,
               "product scale 2^" << std::log2(scale) << " exceeds the modulus at level " << a.level());
  a.set_seed(std::nullopt);
  for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
    const u64 w = q.from_double(c * const_scale), ws = q.shoup(w);
    for (std::size_t k = 0; k < a.size(); ++k) {
      u64* x = a.limb(k, i);
      for (std::size_t j = 0; j < n; ++j) x[j] = q.mul_shoup(x[j], w, ws);
    }
  });
  a.set_scale(scale);
}

void Evaluator::multiply_int_inplace(Ciphertext& a, std::int64_t k) const {
  check(a, "ciphertext");
  a.set_seed(std::nullopt);
  for_limbs(*ctx_, a.num_limbs(), [&](std::size_t i, const math::Modulus& q, std::size_t n) {
    const u64 w = q.from_signed(k), ws = q.shoup(w);
    for (std::size_t c = 0; c < a.size(); ++c) {
      u64* x = a.limb(c, i);
      for (std::size_t j = 0; j < n; ++j) x[j] = q.mul_shoup(x[j], w, ws);
    }
  });
}

void Evaluator::rescale_inplace(Ciphertext& a) const {
  check(a, "ciphertext");
  const int l = a.level();
  VEIL_REQUIRE(l >= 1, "cannot rescale a ciphertext at level 0 (no prime left to divide by)");
  const std::size_t n = ctx_->n();
  const auto& ql = ctx_->modulus(l);
  const u64 half = ql.value() >> 1;
  Ciphertext out(*ctx_, a.size(), l - 1, a.scale() / static_cast<double>(ql.value()), a.slots());
  PolyData last(n);
  for (std::size_t c = 0; c < a.size(); ++c) {
    // Last limb to coefficient form, shifted by q_l/2 so that the division rounds.
    std::copy(a.limb(c, l), a.limb(c, l) + n, last.data());
    ctx_->ntt(l).inverse(last.data());
    for (std::size_t j = 0; j < n; ++j) last[j] = ql.add(last[j], half);
    parallel_for(static_cast<std::size_t>(l), [&](std::size_t i) {
      const auto& qi = ctx_->modulus(i);
      thread_local PolyData t;
      t.resize(n);
      const u64 half_i = qi.reduce(half);
      const u64 qv = qi.value();
      if (ql.value() <= 2 * qv) {
        // Residues below q_l <= 2 q_i need one conditional subtraction, not Barrett.
        for (std::size_t j = 0; j < n; ++j)
          t[j] = qi.sub(last[j] - (qv & -static_cast<u64>(last[j] >= qv)), half_i);
      } else {
        for (std::size_t j = 0; j < n; ++j) t[j] = qi.sub(qi.reduce(last[j]), half_i);
      }
      ctx_->ntt(i).forward(t.data());
      math::sub_mul_const_vec(qi, a.limb(c, i), t.data(), ctx_->q_last_inv(l, i), out.limb(c, i), n);
    });
  }
  a = std::move(out);
}

void Evaluator::drop_to_level_inplace(Ciphertext& a, int level) const {
  check(a, "ciphertext");
  a.drop_to_level(level);
}

}  // namespace veil::ckks
