// veil_he_bench: the BSGS linear transform (he/linear_transform.hpp) with single and double
// hoisting (Bossuat et al., Eurocrypt 2021) side by side, in one run, same binary.
//
// The ring and chain were cifar10-shallow's at scale 2^33: N = 2^15, a 45-bit base prime,
// 13 x 33-bit primes, 5 x 49-bit special primes, dnum 2 (log QP 719).
// BM_LinearTransform30 runs on today's chain at scale 2^30 (a 50-bit base prime, 15 x 30-bit
// primes, 8 x 30-bit special primes, dnum 2, log QP 740), where the NTT and the products
// run on 32-bit lanes, with the NTT form and coefficients (cache 1 and 2). The maps
// are convolution-shaped: one ciphertext in, one out, `babies` x `giants` diagonals on a
// grid whose giant step is the baby count (every (baby, giant) pair is a diagonal, as in a
// multiplexed convolution), at the levels the planner puts cifar10-shallow's convolutions.
//
// Names: BM_LinearTransform/<babies>/<giants>/<level>/<hoisting 1 single, 2 double, 3 lazy giant
// steps>/<cache 0 none
// (encode per use), 1 NTT form, 2 coefficients>, two threads.
// Counters: cpu_ms (all threads, per call), plaintext_bytes (the cached diagonals), baby and
// giant rotations, auto_hoisting (what he::Hoisting::kAuto would pick: 1
// single, 2 lazy giant steps, 3 double).
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <tuple>

#include <sys/resource.h>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/he/linear_transform.hpp"
#include "veil/rlwe/keygen.hpp"

using namespace veil;

namespace {

struct Env {
  ckks::ContextPtr ctx;
  std::unique_ptr<rlwe::KeyGenerator> keygen;
  std::unique_ptr<ckks::CkksEncoder> encoder;
  std::unique_ptr<ckks::Encryptor> encryptor;
  std::unique_ptr<ckks::Evaluator> evaluator;
};

// scale_bits 33: the older chain; 30: today's.
Env& env(int scale_bits) {
  static std::map<int, std::unique_ptr<Env>> envs;
  auto& e = envs[scale_bits];
  if (!e) {
    e = std::make_unique<Env>();
    const bool narrow = scale_bits == 30;
    std::vector<int> q = {narrow ? 50 : 45};
    q.insert(q.end(), narrow ? 15 : 13, scale_bits);
    e->ctx = ckks::CkksContext::create(ckks::CkksParameters::create(
        15, q, std::vector<int>(narrow ? 8 : 5, narrow ? 30 : 49), scale_bits, 2));
    e->keygen = std::make_unique<rlwe::KeyGenerator>(e->ctx);
    e->encoder = std::make_unique<ckks::CkksEncoder>(e->ctx);
    e->encryptor = std::make_unique<ckks::Encryptor>(e->ctx, e->keygen->secret_key());
    e->evaluator = std::make_unique<ckks::Evaluator>(e->ctx);
  }
  return *e;
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

he::LinearTransformSpec conv_spec(std::size_t slots, int babies, int giants) {
  std::mt19937_64 g(3);
  std::uniform_real_distribution<double> d(-1, 1);
  he::LinearTransformSpec spec;
  spec.slots = slots;
  for (int gi = 0; gi < giants; ++gi)
    for (int b = 0; b < babies; ++b) {
      std::vector<double> v(slots);
      for (auto& x : v) x = d(g);
      spec.diagonals.push_back({0, 0, gi * babies + b, std::move(v)});
    }
  return spec;
}

void linear_transform(benchmark::State& state, int scale_bits) {
  const int babies = static_cast<int>(state.range(0)), giants = static_cast<int>(state.range(1));
  const int level = static_cast<int>(state.range(2));
  const auto hoisting = state.range(3) == 2   ? he::Hoisting::kDouble
                        : state.range(3) == 3 ? he::Hoisting::kLazyGiant
                                              : he::Hoisting::kSingle;
  const auto cache = static_cast<he::PlaintextCache>(state.range(4));
  set_num_threads(2);
  Env& e = env(scale_bits);
  const std::size_t slots = e.ctx->max_slots();
  he::LinearTransform lt(*e.encoder, conv_spec(slots, babies, giants), level, babies, cache, 0, hoisting);
  // Keys at the transform's level only (as the planner generates them).
  const auto gk = e.keygen->create_galois_keys(lt.rotation_steps(), false, level);
  std::vector<double> x(slots, 0.5);
  const auto ct =
      e.encryptor->encrypt(e.encoder->encode(std::span<const double>(x), e.ctx->params().scale, level));
  benchmark::DoNotOptimize(lt.apply(*e.evaluator, {ct}, gk));  // warm: first-touch page faults
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) benchmark::DoNotOptimize(lt.apply(*e.evaluator, {ct}, gk));
  // All threads' CPU time (the machine is shared, so wall time is inflated by the load).
  state.counters["cpu_ms"] = 1e3 * (process_cpu_seconds() - cpu0) / static_cast<double>(state.iterations());
  const auto counts = lt.counts();
  state.counters["plaintext_bytes"] = static_cast<double>(lt.plaintext_bytes());
  state.counters["baby_rot"] = counts.baby_rotations;
  state.counters["giant_rot"] = counts.giant_rotations;
  state.counters["auto_hoisting"] =
      static_cast<double>(he::choose_hoisting(counts, 1, level, e.ctx->num_p()));
}

void BM_LinearTransform(benchmark::State& state) { linear_transform(state, 33); }
void BM_LinearTransform30(benchmark::State& state) { linear_transform(state, 30); }

void args(benchmark::internal::Benchmark* b) {
  // (babies, giants, level): few giant steps (where double hoisting is meant to pay), and
  // two convolution shapes of cifar10-shallow's size.
  for (const auto& [babies, giants, level] :
       {std::tuple{32, 2, 8}, std::tuple{16, 16, 8}, std::tuple{36, 36, 6}, std::tuple{16, 16, 3}}) {
    for (int hoisting : {1, 2, 3}) b->Args({babies, giants, level, hoisting, 1});
    b->Args({babies, giants, level, 1, 2});
    b->Args({babies, giants, level, 1, 0});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_LinearTransform)->Apply(args);
// The two convolution shapes, single hoisting, NTT form and coefficients.
BENCHMARK(BM_LinearTransform30)->Apply([](benchmark::internal::Benchmark* b) {
  for (const auto& [babies, giants, level] : {std::tuple{36, 36, 6}, std::tuple{16, 16, 12}})
    for (int cache : {1, 2}) b->Args({babies, giants, level, 1, cache});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
});
