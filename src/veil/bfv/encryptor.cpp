#include "veil/bfv/encryptor.hpp"

#include <algorithm>

#include "veil/bfv/multiword.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::bfv {

namespace {

using math::u128;

constexpr std::size_t kChunk = 512;

// round(t x / Q_level) mod t for each of `count` coefficients x given by their residues
// (coefficient form) x[i][j] mod q_i; see encryptor.hpp for the method.
void exact_round(const BfvContext& ctx, int level, const std::vector<const u64*>& x, std::size_t count,
                 u64* out) {
  const std::size_t limbs = static_cast<std::size_t>(level) + 1;
  const math::RnsBase& base = ctx.q_base(level);
  const math::Modulus& tm = ctx.t_mod();
  const u64 t = ctx.t();
  const std::size_t w = ctx.words();
  detail::Words two_q = ctx.q_words(level);
  detail::add(two_q, ctx.q_words(level));
  const std::size_t chunks = (count + kChunk - 1) / kChunk;
  parallel_for(chunks, [&](std::size_t c) {
    detail::Words acc(w);
    for (std::size_t j = c * kChunk; j < std::min(count, (c + 1) * kChunk); ++j) {
      std::fill(acc.begin(), acc.end(), 0);
      u64 whole = 0;
      for (std::size_t i = 0; i < limbs; ++i) {
        const math::Modulus& q = base[i];
        const u64 y = q.mul_shoup(x[i][j], base.punctured_inv(i), base.punctured_inv_shoup(i));
        const u128 ty = static_cast<u128>(t) * y;
        const u64 a = static_cast<u64>(ty / q.value());  // < t because y < q_i
        const u64 b = static_cast<u64>(ty % q.value());
        whole = tm.add(whole, a);
        detail::mul_add(acc, ctx.qhat_words(level, i), b);
      }
      // round(sum_i b_i / q_i) = floor((2 sum_i b_i Q/q_i + Q) / 2Q), a small count.
      detail::add(acc, std::span<const u64>(acc));
      detail::add(acc, ctx.q_words(level));
      u64 k = 0;
      while (detail::geq(acc, two_q)) {
        detail::sub(acc, two_q);
        ++k;
      }
      out[j] = tm.add(whole, tm.reduce(k));
    }
  });
}

}  // namespace

Encryptor::Encryptor(ContextPtr ctx, rlwe::PublicKey pk) : ctx_(ctx), base_(std::move(ctx), std::move(pk)) {}
Encryptor::Encryptor(ContextPtr ctx, rlwe::SecretKey sk) : ctx_(ctx), base_(std::move(ctx), std::move(sk)) {}
Encryptor::Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::PublicKey> pk)
    : ctx_(ctx), base_(std::move(ctx), std::move(pk)) {}
Encryptor::Encryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk)
    : ctx_(ctx), base_(std::move(ctx), std::move(sk)) {}

Ciphertext Encryptor::encrypt_zero(int level) const {
  return base_.encrypt_zero(level < 0 ? ctx_->max_level() : level);
}

Ciphertext Encryptor::encrypt(const Plaintext& p) const {
  check_plaintext(*ctx_, p, "plaintext");
  const int level = ctx_->max_level();
  rlwe::Plaintext pt(*ctx_, level);
  ctx_->scale_plaintext(level, p.coeffs(), pt.data().data());
  parallel_for(pt.num_limbs(), [&](std::size_t i) { ctx_->ntt(i).forward(pt.limb(i)); });
  return base_.encrypt(pt);
}

Decryptor::Decryptor(ContextPtr ctx, rlwe::SecretKey sk)
    : Decryptor(std::move(ctx), std::make_shared<const rlwe::SecretKey>(std::move(sk))) {}

Decryptor::Decryptor(ContextPtr ctx, std::shared_ptr<const rlwe::SecretKey> sk)
    : ctx_(std::move(ctx)), sk_(std::move(sk)) {
  VEIL_REQUIRE(ctx_, "null context");
  VEIL_REQUIRE(sk_, "null secret key");
  rlwe::check_param_id(*ctx_, sk_->param_id(), "secret key");
  VEIL_REQUIRE(sk_->data().size() == (ctx_->num_q() + ctx_->num_p()) * ctx_->n(),
               "secret key has the wrong size");
}

namespace {

// [c0 + c1 s]_q per limb in coefficient form.
rlwe::PolyData phase(const BfvContext& ctx, const rlwe::SecretKey& sk, const Ciphertext& ct) {
  rlwe::check_param_id(ctx, ct.param_id(), "ciphertext");
  VEIL_REQUIRE(
      ct.n() == ctx.n() && ct.size() == 2 && ct.level() >= 0 && ct.level() <= ctx.max_level(),
      "ciphertext does not match the BFV context (size " << ct.size() << ", level " << ct.level() << ")");
  const std::size_t n = ctx.n();
  rlwe::PolyData x(ct.num_limbs() * n);
  parallel_for(ct.num_limbs(), [&](std::size_t i) {
    const math::Modulus& q = ctx.modulus(i);
    u64* o = x.data() + i * n;
    math::mul_vec(q, ct.limb(1, i), sk.data().data() + i * n, o, n);
    const u64* c0 = ct.limb(0, i);
    math::add_vec(q, o, c0, o, n);
    ctx.ntt(i).inverse(o);
  });
  return x;
}

std::vector<const u64*> limb_pointers(const rlwe::PolyData& x, std::size_t limbs, std::size_t stride) {
  std::vector<const u64*> p(limbs);
  for (std::size_t i = 0; i < limbs; ++i) p[i] = x.data() + i * stride;
  return p;
}

}  // namespace

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  const rlwe::PolyData x = phase(*ctx_, *sk_, ct);
  const std::size_t n = ctx_->n();
  std::vector<u64> m(n);
  exact_round(*ctx_, ct.level(), limb_pointers(x, ct.num_limbs(), n), n, m.data());
  return Plaintext(*ctx_, std::move(m));
}

rlwe::PolyData Decryptor::response_phase(const Response& r) const {
  rlwe::check_param_id(*ctx_, r.param_id, "response");
  VEIL_REQUIRE(r.level >= 0 && r.level <= ctx_->max_level(),
               "response level " << r.level << " outside 0.." << ctx_->max_level());
  const std::size_t n = ctx_->n(), limbs = r.num_limbs(), count = r.indices.size();
  VEIL_REQUIRE(r.c1.size() == limbs * n && r.c0.size() == limbs * count,
               "response sizes do not match its level and indices");
  for (auto idx : r.indices) VEIL_REQUIRE(idx < n, "response index " << idx << " outside the ring");
  rlwe::PolyData x(limbs * count);
  parallel_for(limbs, [&](std::size_t i) {
    const math::Modulus& q = ctx_->modulus(i);
    rlwe::PolyData cs(r.c1.data() + i * n, r.c1.data() + (i + 1) * n);
    ctx_->ntt(i).forward(cs.data());
    math::mul_vec(q, cs.data(), sk_->data().data() + i * n, cs.data(), n);
    ctx_->ntt(i).inverse(cs.data());
    const u64* c0 = r.c0.data() + i * count;
    u64* o = x.data() + i * count;
    for (std::size_t k = 0; k < count; ++k) o[k] = q.add(cs[r.indices[k]], c0[k]);
  });
  return x;
}

std::vector<u64> Decryptor::decrypt(const Response& r) const {
  const rlwe::PolyData x = response_phase(r);
  std::vector<u64> m(r.indices.size());
  exact_round(*ctx_, r.level, limb_pointers(x, r.num_limbs(), m.size()), m.size(), m.data());
  return m;
}

namespace {

// Centred [x - round(Q m / t)]_Q for `count` coefficients given by residues x[i][j].
std::vector<double> noise_of(const BfvContext& ctx, int level, const std::vector<const u64*>& x,
                             std::size_t count, const std::vector<u64>& m) {
  const std::size_t limbs = static_cast<std::size_t>(level) + 1, n = count;
  const math::RnsBase& base = ctx.q_base(level);
  const u64 t = ctx.t();
  const detail::Words& qw = ctx.q_words(level);
  detail::Words half = qw;
  detail::div_word(half, 2);
  std::vector<double> out(n);
  parallel_for((n + kChunk - 1) / kChunk, [&](std::size_t c) {
    const std::size_t w = ctx.words();
    detail::Words v(w), d(w);
    for (std::size_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); ++j) {
      // x by CRT, reduced below Q.
      std::fill(v.begin(), v.end(), 0);
      for (std::size_t i = 0; i < limbs; ++i) {
        const u64 y = base[i].mul_shoup(x[i][j], base.punctured_inv(i), base.punctured_inv_shoup(i));
        detail::mul_add(v, ctx.qhat_words(level, i), y);
      }
      while (detail::geq(v, qw)) detail::sub(v, qw);
      // v - round(Q m / t) mod Q = v - (Delta m + round((Q mod t) m / t)).
      std::fill(d.begin(), d.end(), 0);
      d[0] = static_cast<u64>((2 * static_cast<u128>(ctx.q_mod_t(level)) * m[j] + t) /
                              (2 * static_cast<u128>(t)));
      detail::mul_add(d, ctx.delta_words(level), m[j]);
      if (!detail::geq(v, d)) detail::add(v, qw);
      detail::sub(v, d);
      if (detail::geq(v, half) && !(v == half)) {
        detail::Words neg = qw;
        detail::sub(neg, v);
        out[j] = -static_cast<double>(detail::to_long_double(neg));
      } else {
        out[j] = static_cast<double>(detail::to_long_double(v));
      }
    }
  });
  return out;
}

}  // namespace

std::vector<double> Decryptor::noise(const Ciphertext& ct) const {
  const rlwe::PolyData x = phase(*ctx_, *sk_, ct);
  const std::size_t n = ctx_->n();
  const auto ptrs = limb_pointers(x, ct.num_limbs(), n);
  std::vector<u64> m(n);
  exact_round(*ctx_, ct.level(), ptrs, n, m.data());
  return noise_of(*ctx_, ct.level(), ptrs, n, m);
}

std::vector<double> Decryptor::noise(const Response& r) const {
  const rlwe::PolyData x = response_phase(r);
  const auto ptrs = limb_pointers(x, r.num_limbs(), r.indices.size());
  std::vector<u64> m(r.indices.size());
  exact_round(*ctx_, r.level, ptrs, m.size(), m.data());
  return noise_of(*ctx_, r.level, ptrs, m.size(), m);
}

}  // namespace veil::bfv
