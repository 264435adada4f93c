// veil_kernels_bench: the engine's SIMD kernels at each level the CPU has, in one run
// (Google Benchmark). Names are BM_<Kernel>/<level>/<log_n>/<prime bits>[/...], level
// 0 = scalar, 1 = AVX2, 2 = AVX-512 (IFMA); a level the CPU lacks is skipped with a
// message. The label says which kernel the dispatcher actually ran (a prime above 2^50
// has no AVX2 kernel, for instance). One polynomial of N residues per iteration; the
// counter "ns_per_coeff" divides by N (and by the term count for the sums).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "veil/common/thread_pool.hpp"
#include "veil/he/mac.hpp"
#include "veil/math/cpu.hpp"
#include "veil/math/ntt.hpp"
#include "veil/math/primes.hpp"
#include "veil/math/rns.hpp"
#include "veil/math/vecmod.hpp"

using namespace veil;
using namespace veil::math;

namespace {

// Caps the level for this benchmark; false (and the benchmark skipped) when the CPU lacks it.
// One thread: the figures compare kernels, not the thread pool (and CPU time, the column
// to read on a shared machine, counts the calling thread only).
bool enter_level(benchmark::State& state) {
  set_num_threads(1);
  const auto level = static_cast<SimdLevel>(state.range(0));
  set_simd_level(level);
  if (simd_level() != level) {
    state.SkipWithError((std::string(simd_level_name(level)) + " not available on this CPU").c_str());
    return false;
  }
  return true;
}

std::vector<u64> random_residues(const Modulus& q, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<u64> v(n);
  for (auto& x : v) x = g() % q.value();
  return v;
}

Modulus prime(int bits, int log_n) { return Modulus(generate_ntt_primes(bits, 1, u64{2} << log_n)[0]); }

// kind 0: forward, 1: inverse, 2: forward on a limb held in 32-bit words
// (NttTables::forward32, how cached weight diagonals kept as coefficients are expanded):
// against the forward transform at the same 30-bit prime, the two passes that narrow and
// widen the limb.
void ntt(benchmark::State& state, int kind) {
  if (!enter_level(state)) return;
  const int log_n = static_cast<int>(state.range(1));
  const NttTables t(log_n, prime(static_cast<int>(state.range(2)), log_n));
  auto a = random_residues(t.modulus(), t.n(), 1);
  std::vector<std::uint32_t> a32(a.begin(), a.end());
  state.SetLabel(simd_level_name(t.kernel_level()));
  for (auto _ : state) {
    kind == 0 ? t.forward(a.data()) : kind == 1 ? t.inverse(a.data()) : t.forward32(a32.data());
    benchmark::ClobberMemory();
  }
  state.counters["ns_per_coeff"] =
      benchmark::Counter(static_cast<double>(t.n()),
                         benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_NttForward(benchmark::State& state) { ntt(state, 0); }
void BM_NttInverse(benchmark::State& state) { ntt(state, 1); }
void BM_NttForward32(benchmark::State& state) { ntt(state, 2); }

// out = a * b (the ciphertext-plaintext product, one limb).
void BM_MulVec(benchmark::State& state) {
  if (!enter_level(state)) return;
  const std::size_t n = std::size_t{1} << state.range(1);
  const Modulus q = prime(static_cast<int>(state.range(2)), static_cast<int>(state.range(1)));
  const auto a = random_residues(q, n, 1), b = random_residues(q, n, 2);
  std::vector<u64> o(n);
  state.SetLabel(simd_level_name(vecmod_level(q)));
  for (auto _ : state) {
    mul_vec(q, a.data(), b.data(), o.data(), n);
    benchmark::ClobberMemory();
  }
}

// The tensor product of two ciphertext limbs (the multiplication before relinearisation).
void BM_Tensor(benchmark::State& state) {
  if (!enter_level(state)) return;
  const std::size_t n = std::size_t{1} << state.range(1);
  const Modulus q = prime(static_cast<int>(state.range(2)), static_cast<int>(state.range(1)));
  const auto a0 = random_residues(q, n, 1), a1 = random_residues(q, n, 2);
  const auto b0 = random_residues(q, n, 3), b1 = random_residues(q, n, 4);
  std::vector<u64> c0(n), c1(n), c2(n);
  state.SetLabel(simd_level_name(vecmod_level(q)));
  for (auto _ : state) {
    tensor_vec(q, a0.data(), a1.data(), b0.data(), b1.data(), c0.data(), c1.data(), c2.data(), n);
    benchmark::ClobberMemory();
  }
}

// The key-switching inner product over range(3) digits, with an automorphism's permutation
// when range(4) is 1 (a rotation) and without (relinearisation); keys in 64-bit words, or
// (narrow) in the narrowest words rlwe::KeyPoly holds them in: 32 bits below 2^32, 33
// bits below 2^33.
void key_switch_dot(benchmark::State& state, bool narrow) {
  if (!enter_level(state)) return;
  const int log_n = static_cast<int>(state.range(1));
  const std::size_t n = std::size_t{1} << log_n, terms = static_cast<std::size_t>(state.range(3));
  const Modulus q = prime(static_cast<int>(state.range(2)), log_n);
  if (narrow && q.bits() > 33) {
    state.SkipWithError("no narrower key words than 64 bits for this prime");
    return;
  }
  std::vector<std::vector<u64>> v, k0, k1;
  std::vector<const u64*> pv, pk0, pk1;
  for (std::size_t t = 0; t < terms; ++t) {
    v.push_back(random_residues(q, n, 3 * t + 1));
    k0.push_back(random_residues(q, n, 3 * t + 2));
    k1.push_back(random_residues(q, n, 3 * t + 3));
    pv.push_back(v.back().data());
    pk0.push_back(k0.back().data());
    pk1.push_back(k1.back().data());
  }
  // Narrow: the same keys in 32-bit words, plus their 33rd bits for a 33-bit prime.
  std::vector<std::vector<std::uint32_t>> low0, low1;
  std::vector<std::vector<std::uint8_t>> high0, high1;
  std::vector<const std::uint32_t*> pl0, pl1;
  std::vector<Words33> w0, w1;
  auto high_bits = [n](const std::vector<u64>& k) {
    std::vector<std::uint8_t> h(n / 8);
    pack_bit32(k.data(), n, h.data());
    return h;
  };
  for (std::size_t t = 0; narrow && t < terms; ++t) {
    low0.emplace_back(k0[t].begin(), k0[t].end());
    low1.emplace_back(k1[t].begin(), k1[t].end());
    high0.push_back(high_bits(k0[t]));
    high1.push_back(high_bits(k1[t]));
  }
  for (std::size_t t = 0; narrow && t < terms; ++t) {
    pl0.push_back(low0[t].data());
    pl1.push_back(low1[t].data());
    w0.push_back({low0[t].data(), high0[t].data()});
    w1.push_back({low1[t].data(), high1[t].data()});
  }
  std::vector<std::uint32_t> perm(n);
  for (std::size_t j = 0; j < n; ++j) perm[j] = static_cast<std::uint32_t>((j * 5 + 3) % n);
  std::vector<u64> o0(n), o1(n);
  const std::uint32_t* p = state.range(4) ? perm.data() : nullptr;
  state.SetLabel(std::string(simd_level_name(vecmod_level(q))) + (!narrow          ? ", 64-bit keys"
                                                                  : q.bits() <= 32 ? ", 32-bit keys"
                                                                                   : ", 33-bit keys"));
  for (auto _ : state) {
    if (!narrow)
      dot2_vec(q, terms, pv.data(), p, pk0.data(), pk1.data(), o0.data(), o1.data(), n);
    else if (q.bits() <= 32)
      dot2_vec(q, terms, pv.data(), p, pl0.data(), pl1.data(), o0.data(), o1.data(), n);
    else
      dot2_vec(q, terms, pv.data(), p, w0.data(), w1.data(), o0.data(), o1.data(), n);
    benchmark::ClobberMemory();
  }
}

void BM_KeySwitchDot(benchmark::State& state) { key_switch_dot(state, false); }
void BM_KeySwitchDotNarrow(benchmark::State& state) { key_switch_dot(state, true); }

// Fast base conversion (the modulus raising of key switching) from range(3) source limbs
// (one of 60 bits, the rest of 40) to three 50-bit special primes, coefficient form.
void BM_BaseConvert(benchmark::State& state) {
  if (!enter_level(state)) return;
  const int log_n = static_cast<int>(state.range(1));
  const std::size_t n = std::size_t{1} << log_n, nf = static_cast<std::size_t>(state.range(3));
  // Sources: a 60-bit prime and 40-bit ones (a key switch's lowering from P), or with
  // range(4) = 1 all of the targets' size (a 30- or 40-bit chain's raising of a digit).
  std::vector<int> bits;
  if (state.range(4)) {
    bits.assign(nf, static_cast<int>(state.range(2)));
  } else {
    bits = {60};
    bits.insert(bits.end(), nf - 1, 40);
  }
  bits.insert(bits.end(), 3, static_cast<int>(state.range(2)));
  std::vector<Modulus> mods;
  for (u64 p : generate_ntt_primes(bits, u64{2} << log_n)) mods.emplace_back(p);
  const BaseConverter conv(RnsBase(std::vector<Modulus>(mods.begin(), mods.begin() + nf)),
                           RnsBase(std::vector<Modulus>(mods.begin() + nf, mods.end())));
  std::vector<std::vector<u64>> y, out(3, std::vector<u64>(n));
  std::vector<const u64*> py;
  std::vector<u64*> po;
  for (std::size_t i = 0; i < nf; ++i) y.push_back(random_residues(mods[i], n, i + 1));
  for (auto& v : y) py.push_back(v.data());
  for (auto& v : out) po.push_back(v.data());
  state.SetLabel(simd_level_name(vecmod_level(mods[nf])));
  for (auto _ : state) {
    conv.convert_targets(py.data(), po.data(), n);
    benchmark::ClobberMemory();
  }
}

// A linear layer's multiply-accumulate over range(3) terms of two-polynomial ciphertexts:
// pointwise plaintext weights (kind 0, the diagonal method) or one weight per term and
// eight output rows (kind 1, a convolution's channels).
void BM_Mac(benchmark::State& state) {
  if (!enter_level(state)) return;
  const int log_n = static_cast<int>(state.range(1));
  const std::size_t n = std::size_t{1} << log_n, terms = static_cast<std::size_t>(state.range(3));
  const Modulus q = prime(static_cast<int>(state.range(2)), log_n);
  const bool rows = state.range(4) == 1;
  constexpr std::size_t kPolys = 2, kRows = 8;
  std::vector<std::vector<u64>> x, w;
  std::vector<const u64*> px, pw;
  for (std::size_t t = 0; t < terms * kPolys; ++t) x.push_back(random_residues(q, n, t + 1));
  for (auto& r : x) px.push_back(r.data());
  for (std::size_t r = 0; r < (rows ? kRows : terms); ++r)
    w.push_back(random_residues(q, rows ? terms : n, 99 + r));
  for (auto& r : w) pw.push_back(r.data());
  std::vector<std::vector<u64>> out((rows ? kRows : 1) * kPolys, std::vector<u64>(n));
  std::vector<u64*> po;
  for (auto& r : out) po.push_back(r.data());
  state.SetLabel(simd_level_name(simd_level()));
  for (auto _ : state) {
    if (rows) {
      he::mac_scalar_rows(q, n, kRows, terms, pw.data(), px, kPolys, po.data());
    } else {
      he::mac_pointwise(q, n, pw, px, kPolys, po.data());
    }
    benchmark::ClobberMemory();
  }
}

void levels(benchmark::internal::Benchmark* b, const std::vector<std::vector<std::int64_t>>& rest) {
  for (const auto& r : rest)
    for (std::int64_t level : {0, 1, 2}) {
      std::vector<std::int64_t> args = {level};
      args.insert(args.end(), r.begin(), r.end());
      b->Args(args);
    }
  b->Unit(benchmark::kMicrosecond);
}

void args_ntt32(benchmark::internal::Benchmark* b) { levels(b, {{14, 30}, {15, 30}, {16, 30}}); }

void args_ntt(benchmark::internal::Benchmark* b) {
  levels(b, {{13, 40},
             {14, 30},
             {14, 40},
             {15, 30},
             {15, 40},
             {16, 30},
             {16, 40},
             {15, 50},
             {16, 50},
             {15, 60},
             {16, 60}});
}
void args_vec(benchmark::internal::Benchmark* b) { levels(b, {{15, 40}, {16, 40}, {16, 50}}); }
void args_dot(benchmark::internal::Benchmark* b) {
  levels(b, {{15, 40, 4, 0},
             {15, 30, 2, 0},
             {15, 30, 2, 1},
             {15, 40, 2, 1},
             {14, 30, 5, 1},
             {14, 40, 5, 1},
             {16, 40, 5, 0},
             {16, 40, 5, 1},
             {16, 50, 5, 0},
             {16, 33, 5, 0},
             {16, 33, 5, 1}});
}
void args_dot_narrow(benchmark::internal::Benchmark* b) {
  levels(b, {{15, 30, 2, 1}, {14, 30, 5, 1}, {16, 30, 5, 1}, {16, 33, 5, 0}, {16, 33, 5, 1}});
}
void args_conv(benchmark::internal::Benchmark* b) {
  levels(b, {{15, 50, 16, 0}, {16, 50, 34, 0}, {15, 30, 8, 1}, {15, 40, 8, 1}});
}
void args_mac(benchmark::internal::Benchmark* b) {
  levels(
      b,
      {{13, 30, 64, 0}, {13, 40, 64, 0}, {13, 30, 64, 1}, {16, 40, 16, 0}, {10, 30, 16, 0}, {10, 40, 16, 0}});
}

}  // namespace

BENCHMARK(BM_NttForward)->Apply(args_ntt);
BENCHMARK(BM_NttInverse)->Apply(args_ntt);
BENCHMARK(BM_NttForward32)->Apply(args_ntt32);
BENCHMARK(BM_MulVec)->Apply(args_vec);
BENCHMARK(BM_Tensor)->Apply(args_vec);
BENCHMARK(BM_KeySwitchDot)->Apply(args_dot);
BENCHMARK(BM_KeySwitchDotNarrow)->Apply(args_dot_narrow);
BENCHMARK(BM_BaseConvert)->Apply(args_conv);
BENCHMARK(BM_Mac)->Apply(args_mac);
