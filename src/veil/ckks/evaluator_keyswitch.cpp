// Key-switching operations of the CKKS evaluator: relinearisation, rotations, conjugation
// and hoisted rotations (Halevi-Shoup 2018), each a set of jobs for the scheme-free hybrid
// key switch of rlwe/key_switch.hpp.
#include <algorithm>
#include <cstring>

#include "veil/ckks/evaluator.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::ckks {

void Evaluator::relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const {
  check(a, "ciphertext");
  if (a.size() == 2) return;
  VEIL_REQUIRE(a.size() == 3, "relinearisation supports size-3 ciphertexts, got size " << a.size());
  std::vector<SwitchJob> jobs(1);
  jobs[0].perm = nullptr;
  jobs[0].key = &rk.key;
  ks_.key_switch(a.poly(2), a.level(), jobs);
  const std::size_t n = ctx_->n();
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    u64* c0 = a.limb(0, i);
    u64* c1 = a.limb(1, i);
    const u64* k0 = jobs[0].acc0.data() + i * n;
    const u64* k1 = jobs[0].acc1.data() + i * n;
    math::add_vec(q, c0, k0, c0, n);
    math::add_vec(q, c1, k1, c1, n);
  });
  Ciphertext out(*ctx_, 2, a.level(), a.scale(), a.slots());
  std::memcpy(out.data().data(), a.data().data(), 2 * a.num_limbs() * n * sizeof(u64));
  a = std::move(out);
}

const KeySwitchKey& Evaluator::galois_key(std::uint32_t g, const GaloisKeys& gk) const {
  auto it = gk.keys.find(g);
  VEIL_REQUIRE(it != gk.keys.end(), "no Galois key for Galois element "
                                        << g << " (generate rotation keys for every step the circuit uses)");
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
  ks_.key_switch(c1.data(), a.level(), jobs);
  a = galois_result(a, perm, jobs[0]);
}

Ciphertext Evaluator::galois_result(const Ciphertext& a, const std::vector<std::uint32_t>& perm,
                                    const SwitchJob& job) const {
  // (sigma(c0) + ks0, ks1): c0 is permuted in the NTT domain, c1's image comes from the
  // key switch.
  const std::size_t n = ctx_->n();
  Ciphertext r(*ctx_, 2, a.level(), a.scale(), a.slots());
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
  if (!jobs.empty()) ks_.key_switch(a.poly(1), a.level(), jobs);
  for (std::size_t s = 0; s < steps.size(); ++s) {
    if (job_of[s] == SIZE_MAX) continue;
    SwitchJob& job = jobs[job_of[s]];
    out[s] = galois_result(a, *job.perm, job);
    // Freed as each result is made, so the switch outputs and results are not all held
    // at once.
    PolyData().swap(job.acc0);
    PolyData().swap(job.acc1);
  }
  return out;
}

const math::Modulus& Evaluator::extended_modulus(int level, std::size_t i) const {
  const auto l1 = static_cast<std::size_t>(level) + 1;
  return ctx_->modulus(i < l1 ? i : ctx_->p_index() + (i - l1));
}

std::vector<ExtendedCiphertext> Evaluator::rotate_hoisted_extended(const Ciphertext& a,
                                                                   const std::vector<int>& steps,
                                                                   const GaloisKeys& gk) const {
  check(a, "ciphertext");
  VEIL_REQUIRE(a.size() == 2, "rotate a relinearised (size-2) ciphertext; got size " << a.size());
  const std::size_t n = ctx_->n(), l1 = a.num_limbs(), np = ctx_->num_p();
  std::vector<SwitchJob> jobs;
  std::vector<std::size_t> job_of(steps.size(), SIZE_MAX);
  std::vector<std::uint32_t> elts(steps.size());
  for (std::size_t s = 0; s < steps.size(); ++s) {
    elts[s] = ctx_->galois_element(steps[s]);
    if (elts[s] == 1) continue;
    job_of[s] = jobs.size();
    jobs.push_back(SwitchJob{&ctx_->ntt_permutation(elts[s]), &galois_key(elts[s], gk), {}, {}});
  }
  if (!jobs.empty()) ks_.key_switch(a.poly(1), a.level(), jobs, false);
  // Rotation s: (P * sigma(c0) + ks0, ks1) over Q_l * P, where the P part of P * sigma(c0)
  // is zero; ModDown of it is exactly sigma(c0) + ModDown(ks0). Step 0: (P * c0, P * c1).
  std::vector<ExtendedCiphertext> out(steps.size());
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const std::vector<std::uint32_t>* perm = job_of[s] == SIZE_MAX ? nullptr : jobs[job_of[s]].perm;
    PolyData c0, c1;
    if (perm) {
      c0 = std::move(jobs[job_of[s]].acc0);
      c1 = std::move(jobs[job_of[s]].acc1);
    } else {
      c0.assign((l1 + np) * n, 0);
      c1.assign((l1 + np) * n, 0);
    }
    parallel_for(l1, [&](std::size_t i) {
      const auto& q = ctx_->modulus(i);
      const u64 p = ctx_->p_mod_q(i), p_shoup = q.shoup(p);
      const u64* x0 = a.limb(0, i);
      u64* o0 = c0.data() + i * n;
      if (perm) {
        const std::uint32_t* pm = perm->data();
        for (std::size_t j = 0; j < n; ++j) o0[j] = q.add(o0[j], q.mul_shoup(x0[pm[j]], p, p_shoup));
      } else {
        const u64* x1 = a.limb(1, i);
        u64* o1 = c1.data() + i * n;
        for (std::size_t j = 0; j < n; ++j) {
          o0[j] = q.mul_shoup(x0[j], p, p_shoup);
          o1[j] = q.mul_shoup(x1[j], p, p_shoup);
        }
      }
    });
    out[s] = ExtendedCiphertext(a.level(), a.scale(), a.slots(), n, std::move(c0), std::move(c1));
  }
  return out;
}

ExtendedCiphertext Evaluator::rotate_extended(const Ciphertext& a, int step, const GaloisKeys& gk) const {
  check(a, "ciphertext");
  VEIL_REQUIRE(a.size() == 2, "rotate a relinearised (size-2) ciphertext; got size " << a.size());
  const std::uint32_t elt = ctx_->galois_element(step);
  if (elt == 1) return rotate_hoisted_extended(a, {0}, gk)[0];
  const std::size_t n = ctx_->n(), l1 = a.num_limbs();
  const auto& perm = ctx_->ntt_permutation(elt);
  PolyData c1(l1 * n);
  parallel_for(l1, [&](std::size_t i) {
    const u64* src = a.limb(1, i);
    u64* dst = c1.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) dst[j] = src[perm[j]];
  });
  std::vector<SwitchJob> jobs(1);
  jobs[0].key = &galois_key(elt, gk);
  ks_.key_switch(c1.data(), a.level(), jobs, false);
  PolyData& c0 = jobs[0].acc0;
  parallel_for(l1, [&](std::size_t i) {
    const auto& q = ctx_->modulus(i);
    const u64 p = ctx_->p_mod_q(i), p_shoup = q.shoup(p);
    const u64* x0 = a.limb(0, i);
    u64* o0 = c0.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) o0[j] = q.add(o0[j], q.mul_shoup(x0[perm[j]], p, p_shoup));
  });
  return ExtendedCiphertext(a.level(), a.scale(), a.slots(), n, std::move(jobs[0].acc0),
                            std::move(jobs[0].acc1));
}

void Evaluator::rotate_extended_inplace(ExtendedCiphertext& x, int step, const GaloisKeys& gk) const {
  const std::uint32_t elt = ctx_->galois_element(step);
  if (elt == 1) return;
  const std::size_t n = ctx_->n(), l1 = static_cast<std::size_t>(x.level()) + 1;
  VEIL_REQUIRE(x.n() == n && x.num_limbs() == l1 + ctx_->num_p(),
               "extended ciphertext does not match the context");
  const auto& perm = ctx_->ntt_permutation(elt);
  // c1 / P over Q_level, permuted before raising (one permutation per data limb, as in
  // apply_galois_inplace). P * (c1 / P) differs from c1 by c1 mod P, which the final
  // ModDown divides back down to a rounding error times the secret.
  PolyData c1 = x.poly(1);
  ks_.mod_down(c1, x.level());
  PolyData d(l1 * n);
  parallel_for(l1, [&](std::size_t i) {
    const u64* src = c1.data() + i * n;
    u64* dst = d.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) dst[j] = src[perm[j]];
  });
  std::vector<SwitchJob> jobs(1);
  jobs[0].key = &galois_key(elt, gk);
  ks_.key_switch(d.data(), x.level(), jobs, false);
  // (sigma(c0) + ks0, ks1) over Q_level * P: the automorphism is the same permutation of
  // NTT slots under every prime.
  PolyData& c0 = x.poly(0);
  parallel_for(x.num_limbs(), [&](std::size_t i) {
    const auto& q = extended_modulus(x.level(), i);
    const u64* a0 = c0.data() + i * n;
    u64* k0 = jobs[0].acc0.data() + i * n;
    for (std::size_t j = 0; j < n; ++j) k0[j] = q.add(a0[perm[j]], k0[j]);
  });
  x.poly(0) = std::move(jobs[0].acc0);
  x.poly(1) = std::move(jobs[0].acc1);
}

Ciphertext Evaluator::lower(ExtendedCiphertext x) const {
  VEIL_REQUIRE(!x.empty() && x.n() == ctx_->n() &&
                   x.num_limbs() == static_cast<std::size_t>(x.level()) + 1 + ctx_->num_p(),
               "extended ciphertext does not match the context");
  const std::size_t n = ctx_->n(), l1 = static_cast<std::size_t>(x.level()) + 1;
  ks_.mod_down(x.poly(0), x.level());
  ks_.mod_down(x.poly(1), x.level());
  Ciphertext r(*ctx_, 2, x.level(), x.scale(), x.slots());
  std::memcpy(r.poly(0), x.poly(0).data(), l1 * n * sizeof(u64));
  std::memcpy(r.poly(1), x.poly(1).data(), l1 * n * sizeof(u64));
  return r;
}

}  // namespace veil::ckks
