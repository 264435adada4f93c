#include "veil/math/rns.hpp"

#include <gmp.h>
#include <gtest/gtest.h>

#include <random>

#include "veil/math/primes.hpp"

namespace veil::math {
namespace {

std::vector<Modulus> mods(const std::vector<u64>& ps) { return std::vector<Modulus>(ps.begin(), ps.end()); }

// Random x in [0, B) as a GMP integer, and its residues.
void random_residues(const RnsBase& base, gmp_randstate_t st, mpz_t x, mpz_t bprod, std::vector<u64>& res) {
  mpz_set_ui(bprod, 1);
  for (std::size_t i = 0; i < base.size(); ++i) mpz_mul_ui(bprod, bprod, base[i].value());
  mpz_urandomm(x, st, bprod);
  res.resize(base.size());
  for (std::size_t i = 0; i < base.size(); ++i) res[i] = mpz_fdiv_ui(x, base[i].value());
}

TEST(Rns, FastBaseConversionIsExactUpToMultiplesOfB) {
  const auto ps = generate_ntt_primes({40, 40, 40, 60, 50, 61, 61}, 1 << 11);
  RnsBase from(mods({ps[0], ps[1], ps[2], ps[3]}));
  RnsBase to(mods({ps[4], ps[5], ps[6]}));
  BaseConverter conv(from, to);
  gmp_randstate_t st;
  gmp_randinit_mt(st);
  gmp_randseed_ui(st, 3);
  mpz_t x, b, y;
  mpz_inits(x, b, y, nullptr);
  const std::size_t n = 64;
  std::vector<std::vector<u64>> in(from.size(), std::vector<u64>(n));
  std::vector<mpz_t> xs(n);
  for (std::size_t c = 0; c < n; ++c) {
    mpz_init(xs[c]);
    std::vector<u64> r;
    random_residues(from, st, xs[c], b, r);
    for (std::size_t i = 0; i < from.size(); ++i) in[i][c] = r[i];
  }
  std::vector<u64> flat(from.size() * n), out(to.size() * n), scratch(from.size() * n);
  for (std::size_t i = 0; i < from.size(); ++i) std::copy(in[i].begin(), in[i].end(), flat.begin() + i * n);
  conv.convert(flat.data(), out.data(), n, scratch.data());
  for (std::size_t c = 0; c < n; ++c) {
    // out = x + u*B mod p for some 0 <= u < |B|; find u with the first target, check all.
    bool found = false;
    for (std::size_t u = 0; u < from.size() && !found; ++u) {
      mpz_set(y, b);
      mpz_mul_ui(y, y, u);
      mpz_add(y, y, xs[c]);
      bool all = true;
      for (std::size_t k = 0; k < to.size(); ++k)
        all = all && mpz_fdiv_ui(y, to[k].value()) == out[k * n + c];
      found = all;
    }
    EXPECT_TRUE(found) << "coefficient " << c;
    mpz_clear(xs[c]);
  }
  mpz_clears(x, b, y, nullptr);
  gmp_randclear(st);
}

TEST(Rns, CrtToDoubleMatchesGmpForSmallAndHugeValues) {
  const auto ps = generate_ntt_primes({60, 40, 40, 40, 40, 40, 40, 40}, 1 << 11);
  RnsBase base(mods(ps));
  gmp_randstate_t st;
  gmp_randinit_mt(st);
  gmp_randseed_ui(st, 4);
  mpz_t q, x, half;
  mpz_inits(q, x, half, nullptr);
  mpz_set_ui(q, 1);
  for (auto p : ps) mpz_mul_ui(q, q, p);
  mpz_fdiv_q_2exp(half, q, 1);
  // Magnitudes from 2^10 (fast path) to 2^300 (GMP fallback), both signs.
  for (int mag : {10, 60, 100, 126, 140, 300}) {
    for (int sign : {1, -1}) {
      mpz_urandomb(x, st, mag);
      if (sign < 0) mpz_neg(x, x);
      std::vector<u64> res(ps.size());
      for (std::size_t i = 0; i < ps.size(); ++i) res[i] = mpz_fdiv_ui(x, ps[i]);
      std::vector<const u64*> limbs(ps.size());
      for (std::size_t i = 0; i < ps.size(); ++i) limbs[i] = &res[i];
      double out = 0;
      crt_to_double(base, limbs.data(), 1, 1, 1.0, &out);
      const double want = mpz_get_d(x);
      EXPECT_NEAR(out / want, 1.0, 1e-15) << "magnitude 2^" << mag;
    }
  }
  mpz_clears(q, x, half, nullptr);
  gmp_randclear(st);
}

TEST(Rns, CrtToDoubleSmallBase) {
  const auto ps = generate_ntt_primes({40, 41}, 1 << 11);
  RnsBase base(mods(ps));
  for (long long v : {0LL, 1LL, -1LL, 123456789012345LL, -99999999999999LL}) {
    std::vector<u64> res = {Modulus(ps[0]).from_signed(v), Modulus(ps[1]).from_signed(v)};
    const u64* limbs[2] = {&res[0], &res[1]};
    double out = 0;
    crt_to_double(base, limbs, 1, 1, 1.0, &out);
    EXPECT_EQ(out, static_cast<double>(v));
  }
}

}  // namespace
}  // namespace veil::math
