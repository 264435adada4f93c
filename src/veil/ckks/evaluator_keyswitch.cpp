// Key-switching operations of the CKKS evaluator: relinearisation, rotations, conjugation
// and hoisted rotations (Halevi-Shoup 2018), each a set of jobs for the scheme-free hybrid
// key switch of rlwe/key_switch.hpp.
#include <algorithm>
#include <cstring>

#include "veil/ckks/evaluator.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"

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
    for (std::size_t j = 0; j < n; ++j) {
      c0[j] = q.add(c0[j], k0[j]);
      c1[j] = q.add(c1[j], k1[j]);
    }
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
    out[s] = galois_result(a, *jobs[job_of[s]].perm, jobs[job_of[s]]);
  }
  return out;
}

}  // namespace veil::ckks
