// Hybrid key switching (Han-Ki, CT-RSA 2020; the "GHS + RNS digits" form used by
// Lattigo and OpenFHE):
//
//   1. d -> coefficient form, y_i = [d_i * (Q_j/q_i)^-1]_{q_i} inside its digit j.
//   2a. Raise each digit j to every limb t of Q_l*P outside it by fast base conversion,
//      sum_i y_i * (Q_j/q_i) mod t, in tiles of coefficients: a tile of the digit's
//      sources stays in cache while all targets read it.
//   2b. Per limb t: NTT the raised digits (d_t itself inside digit j) and take each job's
//      inner product sum_j digit_j * key_j, reduced once per coefficient.
//      With many narrow digits (dnum = L) 2a's buffer of digits x limbs polynomials no
//      longer fits anywhere near a cache (924 MB at N = 2^16, L = 41): then each worker
//      raises all digits to one limb t and runs 2b on them at once (Raise::kPerTarget),
//      as SEAL does for its one-prime digits.
//   3. ModDown: subtract the base conversion of the P part and multiply by P^-1.
//
// The arithmetic runs in doubles where the primes allow (math/vecmod.hpp).
// Hoisting (Halevi-Shoup 2018; Bossuat et al. 2021) falls out: several rotations are
// several jobs over one decomposition; an automorphism commutes with the raising, so it
// is applied to the raised digits as a permutation of NTT slots.
#include "veil/rlwe/key_switch.hpp"

#include "veil/rlwe/ciphertext.hpp"

#include <algorithm>
#include <cstring>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::rlwe {

KeySwitcher::KeySwitcher(ContextPtr ctx) : ctx_(std::move(ctx)) { VEIL_REQUIRE(ctx_, "null context"); }

void KeySwitcher::key_switch(const u64* d, int level, std::vector<SwitchJob>& jobs, bool lower) const {
  const std::size_t n = ctx_->n(), np = ctx_->num_p(), l1 = static_cast<std::size_t>(level) + 1;
  const std::size_t total = l1 + np;
  const int digits = ctx_->num_digits(level);
  for (auto& job : jobs) {
    check_param_id(*ctx_, job.key->param_id, "key-switching key");
    VEIL_REQUIRE(job.key->level >= level, "key-switching key covers levels up to "
                                              << job.key->level << " but the ciphertext is at level " << level
                                              << " (generate keys at a higher level)");
    VEIL_REQUIRE(static_cast<int>(job.key->num_digits()) >= digits, "key-switching key has too few digits");
  }

  // Step 1: y in coefficient form, scaled inside each digit.
  PolyData y(l1 * n);
  parallel_for(l1, [&](std::size_t i) {
    u64* yi = y.data() + i * n;
    std::memcpy(yi, d + i * n, n * sizeof(u64));
    ctx_->ntt(i).inverse(yi);
    const int j = static_cast<int>(i) / ctx_->alpha();
    ctx_->modup_converter(level, j).scale_input(i - ctx_->digit_begin(j), yi, yi, n);
  });

  // Output limb t is data prime t below l1, special prime t - l1 above; digit j's
  // converter lists its targets in that order without the digit's own limbs.
  auto prime_of = [&](std::size_t t) { return t < l1 ? t : ctx_->p_index() + (t - l1); };
  auto inside = [&](int j, std::size_t t) {
    return t >= ctx_->digit_begin(j) && t < ctx_->digit_end(j, level);
  };
  auto target_index = [&](int j, std::size_t t) {
    const std::size_t b = ctx_->digit_begin(j), e = ctx_->digit_end(j, level);
    return t < b ? t : t - (e - b);
  };
  std::vector<std::vector<const u64*>> sources(digits);
  for (int j = 0; j < digits; ++j) {
    for (std::size_t i = ctx_->digit_begin(j); i < ctx_->digit_end(j, level); ++i)
      sources[j].push_back(y.data() + i * n);
  }
  const std::size_t tiled_bytes = static_cast<std::size_t>(digits) * total * n * sizeof(u64);
  const bool tiled = raise_ == Raise::kTiled || (raise_ == Raise::kAuto && tiled_bytes <= kTiledRaiseBudget);

  // Jobs whose results are lowered run in chunks over one scratch of Q_l * P sums, each
  // lowered into its own buffer of l + 1 limbs: a hoisted batch of rotations then holds its
  // results at l + 1 limbs instead of l + 1 + k, plus one chunk's sums (cifar10-shallow's
  // widest stage: 20 rotations at 14 + 9 limbs, 0.44 GB of sums at once before).
  const std::size_t job_bytes = 2 * total * n * sizeof(u64);
  const std::size_t chunk = lower && tiled ? std::max<std::size_t>(1, chunk_bytes_ / job_bytes) : jobs.size();
  const std::size_t first_chunk = std::min(chunk, jobs.size());
  std::vector<PolyData> qp0(first_chunk), qp1(first_chunk);
  for (std::size_t r = 0; r < first_chunk; ++r) {
    qp0[r].resize(total * n);
    qp1[r].resize(total * n);
  }
  // The chunk's results: lowered, or (not lowered) the sums themselves.
  auto finish_chunk = [&](std::size_t begin, std::size_t count) {
    for (std::size_t r = 0; r < count; ++r) {
      SwitchJob& job = jobs[begin + r];
      if (!lower) {
        job.acc0 = std::move(qp0[r]);
        job.acc1 = std::move(qp1[r]);
        continue;
      }
      if (count == jobs.size()) {  // one chunk: the sums become the results
        mod_down(qp0[r], level);
        mod_down(qp1[r], level);
        job.acc0 = std::move(qp0[r]);
        job.acc1 = std::move(qp1[r]);
        continue;
      }
      // Lowered straight into buffers of l + 1 limbs; the sums stay for the next chunk.
      job.acc0.resize(l1 * n);
      job.acc1.resize(l1 * n);
      mod_down_to(qp0[r], level, job.acc0.data());
      mod_down_to(qp1[r], level, job.acc1.data());
    }
  };

  if (tiled) {
    // Step 2a: the raised digits, raised[j] holding limb t of Q_l*P at (j * total + t) * n
    // (limbs inside digit j are d itself and stay unwritten). All targets of a digit come
    // from one tiled pass over its sources.
    PolyData raised(static_cast<std::size_t>(digits) * total * n);
    for (int j = 0; j < digits; ++j) {
      const auto& conv = ctx_->modup_converter(level, j);
      std::vector<u64*> dst(conv.to().size());
      for (std::size_t t = 0; t < total; ++t) {
        if (!inside(j, t)) dst[target_index(j, t)] = raised.data() + (j * total + t) * n;
      }
      conv.convert_targets(sources[j].data(), dst.data(), n);
    }
    // Step 2b: per output limb, NTT the raised digits and take the inner products, the
    // first chunk's while each limb is in cache, later chunks' from the transformed digits.
    auto limb_sources = [&](std::size_t t) {
      std::vector<const u64*> v(digits);
      for (int j = 0; j < digits; ++j) v[j] = inside(j, t) ? d + t * n : raised.data() + (j * total + t) * n;
      return v;
    };
    parallel_for(total, [&](std::size_t t) {
      for (int j = 0; j < digits; ++j)
        if (!inside(j, t)) ctx_->ntt(prime_of(t)).forward(raised.data() + (j * total + t) * n);
      inner_products(t, l1, limb_sources(t), jobs, 0, first_chunk, qp0, qp1);
    });
    finish_chunk(0, first_chunk);
    for (std::size_t begin = first_chunk; begin < jobs.size(); begin += chunk) {
      const std::size_t count = std::min(chunk, jobs.size() - begin);
      parallel_for(total, [&](std::size_t t) {
        inner_products(t, l1, limb_sources(t), jobs, begin, count, qp0, qp1);
      });
      finish_chunk(begin, count);
    }
  } else {
    // Steps 2a and 2b fused per output limb: the digits' limb t is raised, transformed
    // and consumed by the inner products while it is in cache.
    parallel_for(total, [&](std::size_t t) {
      PolyData buf(static_cast<std::size_t>(digits) * n);
      std::vector<const u64*> v(digits);
      for (int j = 0; j < digits; ++j) {
        if (inside(j, t)) {
          v[j] = d + t * n;
          continue;
        }
        u64* out = buf.data() + static_cast<std::size_t>(j) * n;
        ctx_->modup_converter(level, j).convert_target(target_index(j, t), sources[j].data(), out, n);
        ctx_->ntt(prime_of(t)).forward(out);
        v[j] = out;
      }
      inner_products(t, l1, v, jobs, 0, jobs.size(), qp0, qp1);
    });
    finish_chunk(0, jobs.size());
  }
}

void KeySwitcher::inner_products(std::size_t t, std::size_t l1, const std::vector<const u64*>& v,
                                 const std::vector<SwitchJob>& jobs, std::size_t begin, std::size_t count,
                                 std::vector<PolyData>& qp0, std::vector<PolyData>& qp1) const {
  const std::size_t n = ctx_->n(), digits = v.size();
  const auto& q = ctx_->modulus(t < l1 ? t : ctx_->p_index() + (t - l1));
  // sum_j v_j * key_j, one reduction per output coefficient. Every digit's limb kt is over
  // the same prime, so all are held in the same words (KeyPoly::words_for); `limb` reads
  // them in that form and dot2_vec's overload for it runs.
  for (std::size_t r = 0; r < count; ++r) {
    const KeySwitchKey& key = *jobs[begin + r].key;
    const std::size_t kt = t < l1 ? t : static_cast<std::size_t>(key.level) + 1 + (t - l1);
    const std::uint32_t* p = jobs[begin + r].perm ? jobs[begin + r].perm->data() : nullptr;
    u64* o0 = qp0[r].data() + t * n;
    u64* o1 = qp1[r].data() + t * n;
    auto run = [&](auto limb) {
      std::vector<decltype(limb(key.b[0]))> kb(digits), ka(digits);
      for (std::size_t j = 0; j < digits; ++j) {
        kb[j] = limb(key.b[j]);
        ka[j] = limb(key.a[j]);
      }
      math::dot2_vec(q, digits, v.data(), p, kb.data(), ka.data(), o0, o1, n);
    };
    switch (key.b[0].words(kt)) {
      case KeyPoly::Words::k32:
        run([kt](const KeyPoly& k) { return k.narrow32(kt); });
        break;
      case KeyPoly::Words::k33:
        run([kt](const KeyPoly& k) { return k.words33(kt); });
        break;
      case KeyPoly::Words::k64:
        run([kt](const KeyPoly& k) { return k.wide64(kt); });
        break;
    }
  }
}

void KeySwitcher::mod_down(PolyData& qp, int level) const {
  mod_down_to(qp, level, qp.data());
  qp.resize((static_cast<std::size_t>(level) + 1) * ctx_->n());
}

void KeySwitcher::mod_down_to(PolyData& qp, int level, u64* out) const {
  const std::size_t n = ctx_->n(), np = ctx_->num_p(), l1 = static_cast<std::size_t>(level) + 1;
  const auto& conv = ctx_->moddown_converter(level);
  PolyData ys(np * n);
  std::vector<const u64*> yp(np);
  parallel_for(np, [&](std::size_t k) {
    u64* pk = qp.data() + (l1 + k) * n;
    ctx_->ntt(ctx_->p_index() + k).inverse(pk);
    conv.scale_input(k, pk, ys.data() + k * n, n);
    yp[k] = ys.data() + k * n;
  });
  PolyData t(l1 * n);
  std::vector<u64*> tp(l1);
  for (std::size_t i = 0; i < l1; ++i) tp[i] = t.data() + i * n;
  conv.convert_targets(yp.data(), tp.data(), n);
  parallel_for(l1, [&](std::size_t i) {
    ctx_->ntt(i).forward(tp[i]);
    math::sub_mul_const_vec(ctx_->modulus(i), qp.data() + i * n, tp[i], ctx_->p_inv_mod_q(i), out + i * n, n);
  });
}

}  // namespace veil::rlwe
