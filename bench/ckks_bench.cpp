// veil_ckks_bench: CKKS engine micro-benchmarks (Google Benchmark).
//
// Names are BM_<Op>/<log_n>/<threads>; BM_MulRelinSimd adds the SIMD level (0 scalar,
// 1 AVX2, 2 AVX-512). Each ring degree uses a full 128-bit chain (largest practical Q with
// hybrid key switching inside the bound):
//   2^13: 60 + 2x40,  P = 2x30,   dnum 3   (log QP 200 <= 214)
//   2^14: 60 + 6x40,  P = 3x40,   dnum 3   (log QP 420 <= 430)
//   2^15: 60 + 15x40, P = 4x45,   dnum 4   (log QP 840 <= 868)
//   2^16: 60 + 33x40, P = 8x45,   dnum 5   (log QP 1740 <= 1747)
// Special primes stay at or below 50 bits so every key-switching limb runs the SIMD NTT.
// BM_Cmp* use the chains SEAL 4.4.3 and OpenFHE 1.5.1 were measured with (2^15: 60 +
// 19x40; 2^16: 60 + 41x40), once with one special prime and dnum = L (the only
// 128-bit-secure choice there) and once with dnum = 3 (as OpenFHE was run; exceeds the
// bound). Counters report log_qp, secure (1/0) and object sizes in bytes.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/ckks/ring_switch.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/cpu.hpp"
#include "veil/rlwe/key_switch.hpp"
#include "veil/rlwe/keygen.hpp"

using namespace veil;
using namespace veil::ckks;
using veil::rlwe::GaloisKeys;
using veil::rlwe::KeyGenerator;
using veil::rlwe::PublicKey;
using veil::rlwe::RelinKeys;
using veil::rlwe::SecretKey;

namespace {

enum class Chain { kDefault, kCmpDnumL, kCmpDnum3 };

CkksParameters chain_params(int log_n, Chain chain) {
  if (chain == Chain::kDefault) {
    struct Spec {
      int mids, specials, dnum;
    };
    static const std::map<int, Spec> specs = {
        {13, {2, 1, 3}}, {14, {6, 2, 3}}, {15, {15, 3, 4}}, {16, {33, 6, 5}}};
    const Spec s = specs.at(log_n);
    std::vector<int> q = {60};
    q.insert(q.end(), s.mids, 40);
    // The 60-bit special primes are split into 50-bit ones (same log P, SIMD NTT).
    const int p_bits = 60 * s.specials;
    const int p_count = (p_bits + 49) / 50;
    return CkksParameters::create(log_n, q, std::vector<int>(p_count, p_bits / p_count), 40, s.dnum);
  }
  const int mids = log_n == 15 ? 19 : 41;
  std::vector<int> q = {60};
  q.insert(q.end(), mids, 40);
  if (chain == Chain::kCmpDnumL) {
    // The special prime takes what the bound leaves: 868 - 820 = 48, 1747 - 1700 = 47.
    return CkksParameters::create(log_n, q, {log_n == 15 ? 48 : 47}, 40, mids + 1);
  }
  // 50-bit special primes keep every key-switching limb on the SIMD NTT.
  const int alpha = (mids + 1 + 2) / 3;
  const int p_count = (60 + 40 * (alpha - 1) + 49) / 50;
  return CkksParameters::create(log_n, q, std::vector<int>(p_count, 50), 40, 3, /*allow_insecure=*/true);
}

struct Env {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  std::unique_ptr<CkksEncoder> encoder;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  std::unique_ptr<Encryptor> encryptor;
  std::unique_ptr<Decryptor> decryptor;
  std::unique_ptr<Evaluator> evaluator;
  Plaintext pt;
  Ciphertext ct, ct2;
};

// Keys are expensive at 2^16; build each environment once, lazily, without Galois keys
// unless a benchmark needs them.
Env& env(int log_n, Chain chain, bool galois = false) {
  static std::map<std::pair<int, int>, std::unique_ptr<Env>> cache;
  if (!cache.count({log_n, static_cast<int>(chain)})) {
    // Keep at most one big environment alive: 2^16 keys take gigabytes.
    cache.clear();
    auto& fresh = cache[{log_n, static_cast<int>(chain)}];
    fresh = std::make_unique<Env>();
    Env& e = *fresh;
    e.ctx = CkksContext::create(chain_params(log_n, chain));
    e.keygen = std::make_unique<KeyGenerator>(e.ctx);
    e.encoder = std::make_unique<CkksEncoder>(e.ctx);
    e.pk = e.keygen->create_public_key();
    e.rk = e.keygen->create_relin_keys();
    e.encryptor = std::make_unique<Encryptor>(e.ctx, e.pk);
    e.decryptor = std::make_unique<Decryptor>(e.ctx, e.keygen->secret_key());
    e.evaluator = std::make_unique<Evaluator>(e.ctx);
    std::vector<double> v(e.ctx->max_slots());
    std::mt19937_64 g(1);
    for (auto& x : v) x = static_cast<double>(g() % 2000) / 1000.0 - 1.0;
    e.pt = e.encoder->encode(v, e.ctx->params().scale, e.ctx->max_level());
    e.ct = e.encryptor->encrypt(e.pt);
    e.ct2 = e.encryptor->encrypt(e.pt);
  }
  Env& e = *cache[{log_n, static_cast<int>(chain)}];
  // The comparison chains rotate by one step only: at 2^16 with dnum = L one Galois key
  // takes 1.8 GB in memory, eight would not fit the machine.
  const std::size_t want = chain == Chain::kDefault ? 8 : 1;
  if (galois && e.gk.keys.size() < want) {
    std::vector<int> steps(want);
    for (std::size_t i = 0; i < want; ++i) steps[i] = static_cast<int>(i) + 1;
    e.gk = e.keygen->create_galois_keys(steps);
  }
  return e;
}

void setup(benchmark::State& state, Env& e) {
  set_num_threads(static_cast<int>(state.range(1)));
  const auto& p = e.ctx->params();
  state.counters["log_qp"] = std::round(p.log_qp());
  state.counters["secure"] = p.is_128_bit_secure() ? 1 : 0;
  state.counters["dnum"] = p.dnum;
}

Env& prepare(benchmark::State& state, Chain chain, bool galois = false) {
  Env& e = env(static_cast<int>(state.range(0)), chain, galois);
  setup(state, e);
  return e;
}

// One limb under a 40-bit prime (as most of the chain).
void ntt_loop(benchmark::State& state, Chain chain, bool forward) {
  Env& e = prepare(state, chain);
  std::vector<u64> a(e.ct.limb(0, 1), e.ct.limb(0, 1) + e.ctx->n());
  const auto& tab = e.ctx->ntt(1);
  for (auto _ : state) {
    forward ? tab.forward(a.data()) : tab.inverse(a.data());
    benchmark::DoNotOptimize(a.data());
  }
}

void BM_NTT(benchmark::State& state) { ntt_loop(state, Chain::kDefault, true); }
void BM_INTT(benchmark::State& state) { ntt_loop(state, Chain::kDefault, false); }
void BM_CmpNTT(benchmark::State& state) { ntt_loop(state, Chain::kCmpDnumL, true); }

void BM_Encode(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  std::vector<double> v(e.ctx->max_slots(), 0.25);
  for (auto _ : state)
    benchmark::DoNotOptimize(e.encoder->encode(v, e.ctx->params().scale, e.ctx->max_level()));
}

void BM_Encrypt(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  for (auto _ : state) benchmark::DoNotOptimize(e.encryptor->encrypt(e.pt));
  state.counters["ct_bytes"] = static_cast<double>(save_ciphertext(*e.ctx, e.ct).size());
  Encryptor sym(e.ctx, e.keygen->secret_key());
  state.counters["ct_seeded_bytes"] = static_cast<double>(save_ciphertext(*e.ctx, sym.encrypt(e.pt)).size());
}

void BM_Decrypt(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  for (auto _ : state) benchmark::DoNotOptimize(e.decryptor->decrypt(e.ct));
}

void BM_Add(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  Ciphertext c = e.ct;
  for (auto _ : state) e.evaluator->add_inplace(c, e.ct2);
}

void mul_relin(benchmark::State& state, Env& e) {
  for (auto _ : state) {
    Ciphertext c = e.evaluator->multiply(e.ct, e.ct2);
    e.evaluator->relinearize_inplace(c, e.rk);
    benchmark::DoNotOptimize(c.data().data());
  }
  state.counters["relin_key_bytes"] = static_cast<double>(save_relin_keys(*e.ctx, e.rk).size());
}

void BM_MulRelin(benchmark::State& state) { mul_relin(state, prepare(state, Chain::kDefault)); }
// Multiply + relinearise with the SIMD kernels capped at level range(2) (0 scalar, 1 AVX2,
// 2 AVX-512 IFMA; math/cpu.hpp), so one run compares the paths on the same keys.
void BM_MulRelinSimd(benchmark::State& state) {
  const auto level = static_cast<math::SimdLevel>(state.range(2));
  math::set_simd_level(level);
  if (math::simd_level() != level) {
    state.SkipWithError((std::string(math::simd_level_name(level)) + " not available on this CPU").c_str());
    return;
  }
  state.SetLabel(math::simd_level_name(level));
  mul_relin(state, prepare(state, Chain::kDefault));
  math::set_simd_level(math::SimdLevel::kAvx512);
}
void BM_CmpMulRelin_dnumL(benchmark::State& state) { mul_relin(state, prepare(state, Chain::kCmpDnumL)); }
void BM_CmpMulRelin_dnum3(benchmark::State& state) { mul_relin(state, prepare(state, Chain::kCmpDnum3)); }

void BM_Rescale(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  for (auto _ : state) {
    Ciphertext c = e.ct;
    e.evaluator->rescale_inplace(c);
    benchmark::DoNotOptimize(c.data().data());
  }
}

void rotate(benchmark::State& state, Env& e) {
  for (auto _ : state) benchmark::DoNotOptimize(e.evaluator->rotate(e.ct, 1, e.gk));
  state.counters["galois_key_bytes"] =
      static_cast<double>(save_galois_keys(*e.ctx, e.gk).size() / e.gk.keys.size());
}

void BM_Rotate(benchmark::State& state) { rotate(state, prepare(state, Chain::kDefault, true)); }
void BM_CmpRotate_dnumL(benchmark::State& state) { rotate(state, prepare(state, Chain::kCmpDnumL, true)); }
void BM_CmpRotate_dnum3(benchmark::State& state) { rotate(state, prepare(state, Chain::kCmpDnum3, true)); }

void BM_RotateHoisted8(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault, /*galois=*/true);
  const std::vector<int> steps = {1, 2, 3, 4, 5, 6, 7, 8};
  for (auto _ : state) benchmark::DoNotOptimize(e.evaluator->rotate_hoisted(e.ct, steps, e.gk));
}

void BM_RotateSeparate8(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault, /*galois=*/true);
  for (auto _ : state) {
    for (int s = 1; s <= 8; ++s) benchmark::DoNotOptimize(e.evaluator->rotate(e.ct, s, e.gk));
  }
}

// One key switch of c1 (relinearisation's key) with the digits raised one way or the
// other (rlwe::KeySwitcher::Raise; range(2): 1 = tiled, 2 = per target), so both paths are
// compared in one run; counters: the tiled path's raised-digit buffer in bytes.
void key_switch(benchmark::State& state, Env& e) {
  const auto raise = static_cast<rlwe::KeySwitcher::Raise>(state.range(2));
  rlwe::KeySwitcher ks(e.ctx);
  ks.set_raise(raise);
  const int level = e.ct.level();
  const u64* c1 = e.ct.poly(1);
  for (auto _ : state) {
    std::vector<rlwe::SwitchJob> jobs(1);
    jobs[0].key = &e.rk.key;
    ks.key_switch(c1, level, jobs);
    benchmark::DoNotOptimize(jobs[0].acc0.data());
  }
  const std::size_t total = static_cast<std::size_t>(level) + 1 + e.ctx->num_p();
  state.counters["tiled_buffer_bytes"] =
      static_cast<double>(static_cast<std::size_t>(e.ctx->num_digits(level)) * total * e.ctx->n() * 8);
}

void BM_KeySwitch(benchmark::State& state) { key_switch(state, prepare(state, Chain::kDefault)); }
void BM_CmpKeySwitch_dnumL(benchmark::State& state) { key_switch(state, prepare(state, Chain::kCmpDnumL)); }

void BM_KeyGenRelin(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  for (auto _ : state) benchmark::DoNotOptimize(e.keygen->create_relin_keys());
  state.counters["relin_key_bytes"] = static_cast<double>(save_relin_keys(*e.ctx, e.rk).size());
  state.counters["relin_key_bytes_uncompressed"] =
      static_cast<double>(save_relin_keys(*e.ctx, e.rk, false).size());
  state.counters["public_key_bytes"] = static_cast<double>(save_public_key(*e.ctx, e.pk).size());
}

// One ring switch (ckks/ring_switch.hpp) from 2^log_n to 2^(log_n - 1), at the highest
// level whose modulus the smaller ring holds at 128-bit security; counters: that level
// and the key's size in bytes (uncompressed).
void BM_RingSwitch(benchmark::State& state) {
  Env& e = prepare(state, Chain::kDefault);
  const CkksParameters& big = e.ctx->params();
  int level = big.max_level();
  std::optional<CkksParameters> small;
  for (; level >= 0 && !small; --level) {
    try {
      small = ring_switch_target(big, level);
    } catch (const std::invalid_argument&) {
    }
  }
  ++level;
  const auto small_ctx = CkksContext::create(*small);
  const RingSwitcher switcher(e.ctx, small_ctx);
  const KeyGenerator small_keygen(small_ctx);
  const auto key = switcher.create_key(e.keygen->secret_key(), small_keygen.secret_key());
  Ciphertext ct = e.ct;
  e.evaluator->drop_to_level_inplace(ct, level);
  for (auto _ : state) benchmark::DoNotOptimize(switcher.apply(ct, key));
  state.counters["level"] = level;
  state.counters["key_bytes"] = static_cast<double>(key.bytes());
}

void args_all(benchmark::internal::Benchmark* b) {
  for (int log_n : {13, 14, 15, 16}) {
    for (int threads : {1, 2}) b->Args({log_n, threads});
  }
  b->Unit(benchmark::kMillisecond);
}

void args_simd(benchmark::internal::Benchmark* b) {
  for (int log_n : {15, 16}) {
    for (int level : {0, 1, 2}) b->Args({log_n, 1, level});
  }
  b->Unit(benchmark::kMillisecond);
}

void args_cmp(benchmark::internal::Benchmark* b) {
  for (int log_n : {15, 16}) {
    for (int threads : {1, 2}) b->Args({log_n, threads});
  }
  b->Unit(benchmark::kMillisecond);
}

void args_raise(benchmark::internal::Benchmark* b, std::initializer_list<int> sizes) {
  for (int log_n : sizes) {
    for (int threads : {1, 2}) {
      for (int raise : {1, 2}) b->Args({log_n, threads, raise});
    }
  }
  b->Unit(benchmark::kMillisecond);
}
void args_raise_all(benchmark::internal::Benchmark* b) { args_raise(b, {13, 14, 15, 16}); }
void args_raise_cmp(benchmark::internal::Benchmark* b) { args_raise(b, {15, 16}); }

}  // namespace

// Grouped by chain so each set of keys is built once.
BENCHMARK(BM_NTT)->Apply(args_all);
BENCHMARK(BM_INTT)->Apply(args_all);
BENCHMARK(BM_Encode)->Apply(args_all);
BENCHMARK(BM_Encrypt)->Apply(args_all);
BENCHMARK(BM_Decrypt)->Apply(args_all);
BENCHMARK(BM_Add)->Apply(args_all);
BENCHMARK(BM_MulRelin)->Apply(args_all);
BENCHMARK(BM_MulRelinSimd)->Apply(args_simd);
BENCHMARK(BM_Rescale)->Apply(args_all);
BENCHMARK(BM_Rotate)->Apply(args_all);
BENCHMARK(BM_RotateHoisted8)->Apply(args_all);
BENCHMARK(BM_RotateSeparate8)->Apply(args_all);
BENCHMARK(BM_KeySwitch)->Apply(args_raise_all);
BENCHMARK(BM_KeyGenRelin)->Apply(args_all)->Iterations(2);
BENCHMARK(BM_RingSwitch)->Apply(args_all);
BENCHMARK(BM_CmpNTT)->Apply(args_cmp);
BENCHMARK(BM_CmpMulRelin_dnumL)->Apply(args_cmp);
BENCHMARK(BM_CmpKeySwitch_dnumL)->Apply(args_raise_cmp);
BENCHMARK(BM_CmpRotate_dnumL)->Apply(args_cmp);
BENCHMARK(BM_CmpMulRelin_dnum3)->Apply(args_cmp);
BENCHMARK(BM_CmpRotate_dnum3)->Apply(args_cmp);
