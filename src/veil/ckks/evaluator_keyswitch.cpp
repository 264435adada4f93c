// Hybrid key switching (Han-Ki, CT-RSA 2020; the "GHS + RNS digits" form used by
// Lattigo and OpenFHE):
//
//   1. d -> coefficient form, y_i = [d_i * (Q_j/q_i)^-1]_{q_i} inside its digit j.
//   2a. Raise each digit j to every limb t of Q_l*P outside it by fast base conversion,
//      sum_i y_i * (Q_j/q_i) mod t, in tiles of coefficients: a tile of the digit's
//      sources stays in cache while all targets read it.
//   2b. Per limb t: NTT the raised digits (d_t itself inside digit j) and take each job's
//      inner product sum_j digit_j * key_j, reduced once per coefficient.
//   3. ModDown: subtract the base conversion of the P part and multiply by P^-1.
//
// The arithmetic runs in doubles where the primes allow (math/vecmod.hpp).
// Hoisting (Halevi-Shoup 2018; Bossuat et al. 2021) falls out: several rotations are
// several jobs over one decomposition; an automorphism commutes with the raising, so it
// is applied to the raised digits as a permutation of NTT slots.
#include <algorithm>
#include <cstring>

#include "veil/ckks/evaluator.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::ckks {

void Evaluator::key_switch(const u64* d, int level, std::vector<SwitchJob>& jobs) const {
  const std::size_t n = ctx_->n(), np = ctx_->num_p(), l1 = static_cast<std::size_t>(level) + 1;
  const std::size_t total = l1 + np;
  const int digits = ctx_->num_digits(level);
  for (auto& job : jobs) {
    VEIL_REQUIRE(job.key->param_id == ctx_->param_id(), "key-switching key was made for other parameters");
    VEIL_REQUIRE(job.key->level >= level, "key-switching key covers levels up to " << job.key->level
                                              << " but the ciphertext is at level " << level
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

  // Step 2a: the raised digits, raised[j] holding limb t of Q_l*P at (j * total + t) * n
  // (limbs inside digit j are d itself and stay unwritten). All targets of a digit come
  // from one tiled pass over its sources.
  PolyData raised(static_cast<std::size_t>(digits) * total * n);
  for (int j = 0; j < digits; ++j) {
    const std::size_t b = ctx_->digit_begin(j), e = ctx_->digit_end(j, level);
    std::vector<const u64*> src;
    for (std::size_t i = b; i < e; ++i) src.push_back(y.data() + i * n);
    const auto& conv = ctx_->modup_converter(level, j);
    std::vector<u64*> dst(conv.to().size());
    for (std::size_t t = 0; t < total; ++t) {
      if (t < b || t >= e) dst[t < b ? t : t - (e - b)] = raised.data() + (j * total + t) * n;
    }
    conv.convert_targets(src.data(), dst.data(), n);
  }

  // Step 2b: per output limb, NTT the raised digits and take the inner products.
  std::vector<PolyData> qp0(jobs.size()), qp1(jobs.size());
  for (std::size_t r = 0; r < jobs.size(); ++r) {
    qp0[r].resize(total * n);
    qp1[r].resize(total * n);
  }
  parallel_for(total, [&](std::size_t t) {
    const std::size_t prime = t < l1 ? t : ctx_->p_index() + (t - l1);
    const auto& q = ctx_->modulus(prime);
    std::vector<const u64*> v(digits);
    for (int j = 0; j < digits; ++j) {
      const std::size_t b = ctx_->digit_begin(j), e = ctx_->digit_end(j, level);
      if (t >= b && t < e) {
        v[j] = d + t * n;
        continue;
      }
      u64* out = raised.data() + (j * total + t) * n;
      ctx_->ntt(prime).forward(out);
      v[j] = out;
    }
    // Inner products sum_j v_j * key_j, one reduction per output coefficient.
    std::vector<const u64*> kb(digits), ka(digits);
    for (std::size_t r = 0; r < jobs.size(); ++r) {
      const KeySwitchKey& key = *jobs[r].key;
      const std::size_t kt = t < l1 ? t : static_cast<std::size_t>(key.level) + 1 + (t - l1);
      for (int j = 0; j < digits; ++j) {
        kb[j] = key.b[j].data() + kt * n;
        ka[j] = key.a[j].data() + kt * n;
      }
      const std::uint32_t* p = jobs[r].perm ? jobs[r].perm->data() : nullptr;
      math::dot2_vec(q, digits, v.data(), p, kb.data(), ka.data(), qp0[r].data() + t * n, qp1[r].data() + t * n, n);
    }
  });

  // Step 3: back to Q_l.
  for (std::size_t r = 0; r < jobs.size(); ++r) {
    mod_down(qp0[r], level);
    mod_down(qp1[r], level);
    jobs[r].acc0 = std::move(qp0[r]);
    jobs[r].acc1 = std::move(qp1[r]);
  }
}

void Evaluator::mod_down(PolyData& qp, int level) const {
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
    u64* x = qp.data() + i * n;
    math::sub_mul_const_vec(ctx_->modulus(i), x, tp[i], ctx_->p_inv_mod_q(i), x, n);
  });
  qp.resize(l1 * n);
}

void Evaluator::relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const {
  check(a, "ciphertext");
  if (a.size() == 2) return;
  VEIL_REQUIRE(a.size() == 3, "relinearisation supports size-3 ciphertexts, got size " << a.size());
  std::vector<SwitchJob> jobs(1);
  jobs[0].perm = nullptr;
  jobs[0].key = &rk.key;
  key_switch(a.poly(2), a.level(), jobs);
  const std::size_t n = ctx_->n();
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    u64* c0 = a.limb(0, i);
    u64* c1 = a.limb(1, i);
    const u64* k0 = jobs[0].acc0.data() + i * n;
    const u64* k1 = jobs[0].acc1.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) {
      c0[j] = q.add(c0[j], k0[j]);
      c1[j] = q.add(c1[j], k1[j]);
    }
  });
  Ciphertext out(n, 2, a.level(), a.scale(), a.slots());
  std::memcpy(out.data().data(), a.data().data(), 2 * a.num_limbs() * n * sizeof(u64));
  a = std::move(out);
}

const KeySwitchKey& Evaluator::galois_key(std::uint32_t g, const GaloisKeys& gk) const {
  auto it = gk.keys.find(g);
  VEIL_REQUIRE(it != gk.keys.end(), "no Galois key for Galois element " << g
                                        << " (generate rotation keys for every step the circuit uses)");
  return it->second;
}

void Evaluator::apply_galois_inplace(Ciphertext& a, std::uint32_t galois_elt, const GaloisKeys& gk) const {
  check(a, "ciphertext");
  VEIL_REQUIRE(a.size() == 2, "rotate a relinearised (size-2) ciphertext; got size " << a.size());
  if (galois_elt == 1) return;
  const auto& perm = ctx_->ntt_permutation(galois_elt);
  // One rotation: permuting c1 before raising it costs l+1 permutations of N words,
  // against one per raised digit and limb of Q_l*P when the automorphism is applied to
  // the raised digits (which hoisting needs, to share the raising between rotations).
  const std::size_t n = ctx_->n();
  PolyData c1(a.num_limbs() * n);
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const u64* src = a.limb(1, i);
    u64* dst = c1.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) dst[j] = src[perm[j]];
  });
  std::vector<SwitchJob> jobs(1);
  jobs[0].perm = nullptr;
  jobs[0].key = &galois_key(galois_elt, gk);
  key_switch(c1.data(), a.level(), jobs);
  a = galois_result(a, perm, jobs[0]);
}

Ciphertext Evaluator::galois_result(const Ciphertext& a, const std::vector<std::uint32_t>& perm,
                                     const SwitchJob& job) const {
  // (sigma(c0) + ks0, ks1): c0 is permuted in the NTT domain, c1's image comes from the
  // key switch.
  const std::size_t n = ctx_->n();
  Ciphertext r(n, 2, a.level(), a.scale(), a.slots());
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    const u64* c0 = a.limb(0, i);
    u64* o0 = r.limb(0, i);
    const u64* k0 = job.acc0.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) o0[j] = q.add(c0[perm[j]], k0[j]);
    std::memcpy(r.limb(1, i), job.acc1.data() + i * n, n * sizeof(u64));
  });
  return r;
}

void Evaluator::rotate_inplace(Ciphertext& a, int step, const GaloisKeys& gk) const {
  apply_galois_inplace(a, ctx_->galois_element(step), gk);
}

Ciphertext Evaluator::rotate(const Ciphertext& a, int step, const GaloisKeys& gk) const {
  Ciphertext r = a;
  rotate_inplace(r, step, gk);
  return r;
}

void Evaluator::conjugate_inplace(Ciphertext& a, const GaloisKeys& gk) const {
  apply_galois_inplace(a, ctx_->conjugation_element(), gk);
}

std::vector<Ciphertext> Evaluator::rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps,
                                                  const GaloisKeys& gk) const {
  check(a, "ciphertext");
  VEIL_REQUIRE(a.size() == 2, "rotate a relinearised (size-2) ciphertext; got size " << a.size());
  std::vector<Ciphertext> out(steps.size());
  std::vector<SwitchJob> jobs;
  std::vector<std::size_t> job_of(steps.size(), SIZE_MAX);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const std::uint32_t elt = ctx_->galois_element(steps[s]);
    if (elt == 1) {
      out[s] = a;
      continue;
    }
    job_of[s] = jobs.size();
    jobs.push_back(SwitchJob{&ctx_->ntt_permutation(elt), &galois_key(elt, gk), {}, {}});
  }
  if (!jobs.empty()) key_switch(a.poly(1), a.level(), jobs);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    if (job_of[s] == SIZE_MAX) continue;
    out[s] = galois_result(a, *jobs[job_of[s]].perm, jobs[job_of[s]]);
  }
  return out;
}

}  // namespace veil::ckks
