// The multiply-accumulate kernels against term-by-term modular arithmetic, for primes on
// both sides of the 32-bit fast path and enough terms to cross its reduction batches.
#include <gtest/gtest.h>

#include <random>

#include "math/simd_paths.hpp"
#include "veil/he/mac.hpp"
#include "veil/math/cpu.hpp"
#include "veil/math/primes.hpp"

namespace veil {
namespace {

using math::u64;

class MacTest : public ::testing::TestWithParam<int> {};

void check_pointwise(int bits, std::size_t n, std::size_t terms) {
  const math::Modulus q(math::generate_ntt_primes(bits, 1, 64)[0]);
  std::mt19937_64 g(bits);
  std::uniform_int_distribution<u64> d(0, q.value() - 1);
  std::vector<std::vector<u64>> w(terms, std::vector<u64>(n)), x0(terms, std::vector<u64>(n)),
      x1(terms, std::vector<u64>(n));
  std::vector<u64> ws(terms);
  for (std::size_t t = 0; t < terms; ++t) {
    ws[t] = d(g);
    for (std::size_t j = 0; j < n; ++j) w[t][j] = d(g), x0[t][j] = d(g), x1[t][j] = d(g);
  }
  std::vector<const u64*> pw, px;
  for (std::size_t t = 0; t < terms; ++t)
    pw.push_back(w[t].data()), px.push_back(x0[t].data()), px.push_back(x1[t].data());
  std::vector<u64> o0(n), o1(n), s0(n), s1(n);
  u64* po[2] = {o0.data(), o1.data()};
  u64* ps[2] = {s0.data(), s1.data()};
  he::mac_pointwise(q, n, pw, px, 2, po);
  he::mac_scalar(q, n, ws, px, 2, ps);
  // The same weights packed (4, 4.25 or 6 bytes a residue by the prime's width), where the
  // prime allows; each width's arrays sized exactly, so a kernel reading past them fails
  // under the sanitizers.
  std::vector<u64> k0(n), k1(n);
  std::vector<std::vector<std::uint32_t>> lo(terms);
  std::vector<std::vector<std::uint8_t>> hi(terms);
  std::vector<std::vector<std::uint16_t>> hi16(terms);
  std::vector<he::PackedRow> pk;
  if (he::packable(q)) {
    const he::PackedWidth width = he::packed_width(q);
    EXPECT_EQ(width, bits <= 32   ? he::PackedWidth::k32
                     : bits <= 34 ? he::PackedWidth::k34
                                  : he::PackedWidth::k48);
    std::vector<u64> back(n);
    for (std::size_t t = 0; t < terms; ++t) {
      lo[t].resize(n);
      if (width == he::PackedWidth::k34) hi[t].resize((n + 3) / 4);
      if (width == he::PackedWidth::k48) hi16[t].resize(n);
      he::pack_residues(w[t].data(), n, width, lo[t].data(), hi[t].empty() ? nullptr : hi[t].data(),
                        hi16[t].empty() ? nullptr : hi16[t].data());
      pk.push_back(
          {lo[t].data(), hi[t].empty() ? nullptr : hi[t].data(), hi16[t].empty() ? nullptr : hi16[t].data()});
      EXPECT_EQ(lo[t].size() * 4 + hi[t].size() + hi16[t].size() * 2, he::packed_bytes(width, n));
      he::unpack_residues(pk.back(), n, back.data());
      ASSERT_EQ(back, w[t]) << "pack/unpack round trip, bits " << bits;
    }
    u64* pko[2] = {k0.data(), k1.data()};
    he::mac_pointwise_packed(q, n, pk, px, 2, pko);
  }
  for (std::size_t j = 0; j < n; ++j) {
    u64 e0 = 0, e1 = 0, f0 = 0, f1 = 0;
    for (std::size_t t = 0; t < terms; ++t) {
      e0 = q.add(e0, q.mul(w[t][j], x0[t][j]));
      e1 = q.add(e1, q.mul(w[t][j], x1[t][j]));
      f0 = q.add(f0, q.mul(ws[t], x0[t][j]));
      f1 = q.add(f1, q.mul(ws[t], x1[t][j]));
    }
    ASSERT_EQ(o0[j], e0) << "bits " << bits << " n " << n << " simd " << math::simd_enabled() << " j " << j;
    ASSERT_EQ(o1[j], e1);
    ASSERT_EQ(s0[j], f0);
    ASSERT_EQ(s1[j], f1);
    if (!pk.empty()) {
      ASSERT_EQ(k0[j], e0) << "packed, bits " << bits << " n " << n << " simd " << math::simd_enabled()
                           << " j " << j;
      ASSERT_EQ(k1[j], e1);
    }
  }
}

// Pointwise weights at every SIMD level the CPU has; 304 and 300 coefficients cross the
// SIMD kernels' 256-coefficient tiles (304 a multiple of the AVX-512 width, 300 of AVX2's
// only), 30 are no multiple of either (portable path). 3001 terms: 30-bit primes reduce
// every 16 terms, unreduced double sums of 45-bit products would pass 2^53 long before,
// the IFMA sums fold after 2^11, and the four-term passes leave one term over; 3 terms
// take only the one-term passes. AVX2 with primes below 2^31 (30 and 31 bits): the
// integer kernel folds its sums every 15 and every 2-3 terms, in passes of four and two
// or three.
TEST_P(MacTest, MatchesNaiveModularSums) {
  for (const std::size_t n : {std::size_t{304}, std::size_t{300}, std::size_t{30}}) {
    math::testing_paths::for_each_simd_level([&](math::SimdLevel level) {
      SCOPED_TRACE(testing::Message() << "simd " << math::simd_level_name(level));
      for (const std::size_t terms : {std::size_t{3001}, std::size_t{3}})
        check_pointwise(GetParam(), n, terms);
    });
    if (HasFatalFailure()) return;
  }
}

// Runs kernel(out) at every SIMD level the CPU has, and checks every output against term-by-term
// modular sums: out[r * polys + c][j] = sum_t weight(r, t) * x[t * polys + c][j] mod q.
template <class Weight, class Kernel>
void check_rows(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms, std::size_t polys,
                const std::vector<std::vector<u64>>& x, Weight weight, Kernel kernel) {
  math::testing_paths::for_each_simd_level([&](math::SimdLevel level) {
    const char* simd = math::simd_level_name(level);
    std::vector<std::vector<u64>> out(rows * polys, std::vector<u64>(n, 12345));
    std::vector<u64*> po;
    for (auto& r : out) po.push_back(r.data());
    kernel(po.data());
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < polys; ++c)
        for (std::size_t j = 0; j < n; ++j) {
          u64 e = 0;
          for (std::size_t t = 0; t < terms; ++t) e = q.add(e, q.mul(weight(r, t), x[t * polys + c][j]));
          ASSERT_EQ(out[r * polys + c][j], e)
              << "simd " << simd << " row " << r << " poly " << c << " j " << j;
        }
  });
}

void check_row_blocks(int bits, std::size_t n) {
  const math::Modulus q(math::generate_ntt_primes(bits, 1, 64)[0]);
  const std::size_t terms = 70, rows = 11, polys = 3;
  std::mt19937_64 g(bits + 1);
  std::uniform_int_distribution<u64> d(0, q.value() - 1);
  std::vector<std::vector<u64>> w(rows, std::vector<u64>(terms)), x(terms * polys, std::vector<u64>(n));
  for (auto& r : w)
    for (auto& v : r) v = d(g);
  for (auto& r : x)
    for (auto& v : r) v = d(g);
  std::vector<const u64*> pw, px;
  for (auto& r : w) pw.push_back(r.data());
  for (auto& r : x) px.push_back(r.data());
  ASSERT_NO_FATAL_FAILURE(check_rows(
      q, n, rows, terms, polys, x, [&](std::size_t r, std::size_t t) { return w[r][t]; },
      [&](u64* const* po) { he::mac_scalar_rows(q, n, rows, terms, pw.data(), px, polys, po); }))
      << "bits " << bits;
}

// Blocks of rows: 11 rows cross the 8-row block, at every SIMD level. n = 208 crosses the
// 128- and 64-coefficient tiles and is a multiple of the AVX-512 kernel's 16; 200 is not.
TEST_P(MacTest, RowBlocksMatchNaiveModularSums) {
  for (const std::size_t n : {std::size_t{208}, std::size_t{200}}) {
    check_row_blocks(GetParam(), n);
    if (HasFatalFailure()) return;
  }
}

// Signed 31-bit weights, extremes included, over enough terms to cross the AVX2 kernel's
// term groups (2^(32 - chunk bits): 4096 for 60-bit primes).
TEST_P(MacTest, SignedRowsMatchNaiveModularSums) {
  const int bits = GetParam();
  const math::Modulus q(math::generate_ntt_primes(bits, 1, 64)[0]);
  const std::size_t n = 12, terms = 4200, rows = 6, polys = 2;
  std::mt19937_64 g(bits + 2);
  std::uniform_int_distribution<u64> d(0, q.value() - 1);
  std::uniform_int_distribution<std::int32_t> dw(INT32_MIN, INT32_MAX);
  std::vector<std::vector<std::int32_t>> w(rows, std::vector<std::int32_t>(terms));
  std::vector<std::vector<u64>> x(terms * polys, std::vector<u64>(n));
  for (auto& r : w)
    for (auto& v : r) v = dw(g);
  w[0][0] = INT32_MIN, w[1][0] = INT32_MAX;
  for (auto& r : x)
    for (auto& v : r) v = d(g);
  x[0][0] = q.value() - 1;
  std::vector<const std::int32_t*> pw;
  std::vector<const u64*> px;
  for (auto& r : w) pw.push_back(r.data());
  for (auto& r : x) px.push_back(r.data());
  ASSERT_NO_FATAL_FAILURE(check_rows(
      q, n, rows, terms, polys, x, [&](std::size_t r, std::size_t t) { return q.from_signed(w[r][t]); },
      [&](u64* const* po) { he::mac_scalar_rows_signed(q, n, rows, terms, pw.data(), px, polys, po); }))
      << "bits " << bits;
}

INSTANTIATE_TEST_SUITE_P(PrimeSizes, MacTest,
                         ::testing::Values(14, 20, 30, 31, 32, 33, 34, 40, 45, 48, 49, 50, 60, 61));

}  // namespace
}  // namespace veil
