// The element-wise kernels and fast base conversion against 128-bit reference
// arithmetic, with the SIMD path on and off. The lengths are not multiples of the vector
// width, so the scalar tails run too; the inputs include 0 and q - 1.
#include "veil/math/vecmod.hpp"

#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "math/simd_paths.hpp"
#include "veil/math/cpu.hpp"
#include "veil/math/primes.hpp"
#include "veil/math/rns.hpp"

namespace veil::math {
namespace {

std::vector<u64> random_residues(const Modulus& q, std::size_t n, std::mt19937_64& rng) {
  std::vector<u64> v(n);
  for (auto& x : v) x = rng() % q.value();
  v[0] = 0;
  v[1] = q.value() - 1;
  v[n - 1] = q.value() - 1;
  return v;
}

u64 ref_mul(const Modulus& q, u64 a, u64 b) { return static_cast<u64>(static_cast<u128>(a) * b % q.value()); }

using testing_paths::for_each_simd_level;

const std::vector<int> kBits = {14, 20, 29, 30, 31, 40, 45, 49, 50, 55, 60};

TEST(Vecmod, ElementwiseKernelsMatchReference) {
  std::mt19937_64 rng(1);
  const std::size_t n = 1027;
  for (int bits : kBits) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 11)[0]);
    const auto a0 = random_residues(q, n, rng), a1 = random_residues(q, n, rng);
    const auto b0 = random_residues(q, n, rng), b1 = random_residues(q, n, rng);
    const u64 w = rng() % q.value();
    for_each_simd_level([&](SimdLevel level) {
      SCOPED_TRACE(testing::Message() << bits << "-bit q, simd " << simd_level_name(level));
      std::vector<u64> o(n), c0(n), c1(n), c2(n), s0(n), s1(n), s2(n);
      add_vec(q, a0.data(), b0.data(), o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], (a0[j] + b0[j]) % q.value()) << j;
      o = a0;  // in place
      add_vec(q, o.data(), b0.data(), o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], (a0[j] + b0[j]) % q.value()) << j;
      sub_vec(q, a0.data(), b0.data(), o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], (a0[j] + q.value() - b0[j]) % q.value()) << j;
      o = b0;  // in place, as the right operand
      sub_vec(q, a0.data(), o.data(), o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], (a0[j] + q.value() - b0[j]) % q.value()) << j;
      mul_vec(q, a0.data(), b0.data(), o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], ref_mul(q, a0[j], b0[j])) << j;
      mul_const_vec(q, a0.data(), w, o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], ref_mul(q, a0[j], w)) << j;
      sub_mul_const_vec(q, a0.data(), b0.data(), w, o.data(), n);
      for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o[j], ref_mul(q, q.sub(a0[j], b0[j]), w)) << j;
      tensor_vec(q, a0.data(), a1.data(), b0.data(), b1.data(), c0.data(), c1.data(), c2.data(), n);
      tensor_vec(q, a0.data(), a1.data(), a0.data(), a1.data(), s0.data(), s1.data(), s2.data(), n);
      for (std::size_t j = 0; j < n; ++j) {
        ASSERT_EQ(c0[j], ref_mul(q, a0[j], b0[j])) << j;
        ASSERT_EQ(c1[j], q.add(ref_mul(q, a0[j], b1[j]), ref_mul(q, a1[j], b0[j]))) << j;
        ASSERT_EQ(c2[j], ref_mul(q, a1[j], b1[j])) << j;
        ASSERT_EQ(s0[j], ref_mul(q, a0[j], a0[j])) << j;
        ASSERT_EQ(s1[j], ref_mul(q, 2 * ref_mul(q, a0[j], a1[j]) % q.value(), 1)) << j;
        ASSERT_EQ(s2[j], ref_mul(q, a1[j], a1[j])) << j;
      }
    });
  }
}

// (x w + y) mod q for unreduced 64-bit x and y (BFV's plaintext scaling): random words
// and the extremes 0, q - 1, q, 2^64 - 1, at every level and prime size (the IFMA path's
// 64-bit reduction up to 50 bits, the scalar one above).
TEST(Vecmod, MulConstAddWideMatchesReference) {
  std::mt19937_64 rng(13);
  const std::size_t n = 1029;
  for (int bits : kBits) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 11)[0]);
    std::vector<u64> x(n), y(n);
    for (std::size_t j = 0; j < n; ++j) x[j] = rng(), y[j] = rng();
    const u64 edges[] = {0, q.value() - 1, q.value(), ~u64{0}};
    for (std::size_t e = 0; e < 16; ++e) x[e] = edges[e % 4], y[e] = edges[e / 4];
    const u64 w = rng() % q.value();
    for_each_simd_level([&](SimdLevel level) {
      std::vector<u64> o(n);
      mul_const_add_wide_vec(q, x.data(), w, y.data(), o.data(), n);
      for (std::size_t j = 0; j < n; ++j)
        ASSERT_EQ(o[j], (ref_mul(q, x[j] % q.value(), w) + y[j] % q.value()) % q.value())
            << bits << "-bit q, " << simd_level_name(level) << ", " << j;
    });
  }
}

// A residue of another prime p centred (r - p above p / 2) and reduced mod q: p above and
// below q, the residues at the centre's edges (p / 2, p / 2 + 1), 0 and p - 1.
TEST(Vecmod, LiftCentredMatchesDefinition) {
  std::mt19937_64 rng(17);
  const std::size_t n = 1029;
  for (int bits : kBits) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 11)[0]);
    for (int p_bits : {bits - 1, bits + 1, 50, 61}) {
      if (p_bits < 14 || p_bits == bits) continue;
      const u64 p = generate_ntt_primes(p_bits, 1, 1 << 11)[0];
      std::vector<u64> r(n);
      for (auto& x : r) x = rng() % p;
      r[0] = 0, r[1] = p - 1, r[2] = p / 2, r[3] = p / 2 + 1;
      for_each_simd_level([&](SimdLevel level) {
        std::vector<u64> o(n);
        lift_centred_vec(q, r.data(), p, o.data(), n);
        for (std::size_t j = 0; j < n; ++j) {
          const u64 want = r[j] > p / 2 ? (q.value() - (p - r[j]) % q.value()) % q.value() : r[j] % q.value();
          ASSERT_EQ(o[j], want) << bits << "-bit q, " << p_bits << "-bit p, " << simd_level_name(level)
                                << ", " << j;
        }
      });
    }
  }
}

// Ranks in a table of ascending thresholds (rlwe's error sampler): values equal to a
// threshold and either side of it, 0 and 2^64 - 1, with thresholds above 2^63 (where a
// signed compare would turn), at every level.
TEST(Vecmod, RankMatchesDefinition) {
  std::mt19937_64 rng(19);
  std::vector<u64> t = {1, 5, 5, u64{1} << 40, (u64{1} << 63) - 1, u64{1} << 63, ~u64{0} - 3};
  std::vector<u64> r = {0, ~u64{0}};
  for (u64 x : t) r.insert(r.end(), {x - 1, x, x + 1});
  while (r.size() < 101) r.push_back(rng());
  for_each_simd_level([&](SimdLevel level) {
    std::vector<u64> o(r.size());
    rank_vec(r.data(), r.size(), t.data(), t.size(), o.data());
    for (std::size_t j = 0; j < r.size(); ++j) {
      u64 want = 0;
      for (u64 x : t) want += r[j] >= x ? 1 : 0;
      ASSERT_EQ(o[j], want) << simd_level_name(level) << ", r = " << r[j];
    }
    rank_vec(r.data(), r.size(), t.data(), 0, o.data());  // an empty table
    for (u64 c : o) ASSERT_EQ(c, 0u);
  });
}

// Sums at the edges: exactly q, 2q - 2, zero, at every level and prime size; and the
// differences of the same pairs (0 - (q - 1), (q - 1) - 1, equal operands).
TEST(Vecmod, AddAndSubAtTheEdges) {
  for (int bits : kBits) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 11)[0]);
    const u64 m = q.value() - 1;
    std::vector<u64> a, b;
    for (std::size_t j = 0; j < 19; ++j) {  // not a multiple of the vector widths
      a.push_back(j % 3 == 0 ? m : j % 3 == 1 ? 1 : 0);
      b.push_back(j % 2 == 0 ? 1 : m);
    }
    for_each_simd_level([&](SimdLevel level) {
      std::vector<u64> o(a.size());
      add_vec(q, a.data(), b.data(), o.data(), a.size());
      for (std::size_t j = 0; j < a.size(); ++j)
        ASSERT_EQ(o[j], (a[j] + b[j]) % q.value())
            << bits << "-bit q, " << simd_level_name(level) << ", " << j;
      sub_vec(q, a.data(), b.data(), o.data(), a.size());
      for (std::size_t j = 0; j < a.size(); ++j)
        ASSERT_EQ(o[j], (a[j] + q.value() - b[j]) % q.value())
            << "sub, " << bits << "-bit q, " << simd_level_name(level) << ", " << j;
      sub_vec(q, a.data(), a.data(), o.data(), a.size());
      for (std::size_t j = 0; j < a.size(); ++j) ASSERT_EQ(o[j], 0u) << "a - a, " << j;
    });
  }
}

// The lift of signed 40-bit coefficients (split into 32 low bits and a signed high byte)
// against the definition, at every SIMD level, for primes below and above the largest
// coefficient (the one-conditional-add path and the general one), with the extremes
// +-(2^39 - 1), zero and -1 among random values, and a length that leaves a scalar tail.
TEST(Vecmod, LiftSigned40MatchesDefinition) {
  std::mt19937_64 rng(5);
  const std::size_t n = 1029;
  const std::int64_t top = (std::int64_t{1} << 39) - 1;
  for (int bits : {14, 20, 29, 30, 31, 33, 40, 45, 50, 55, 60}) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 11)[0]);
    for (const std::int64_t largest : {std::int64_t{1000}, top}) {
      std::vector<std::int64_t> c(n);
      for (auto& x : c) x = static_cast<std::int64_t>(rng() % (2 * static_cast<u64>(largest) + 1)) - largest;
      c[0] = largest, c[1] = -largest, c[2] = 0, c[3] = -1, c[n - 1] = -largest;
      std::vector<std::uint32_t> lo(n);
      std::vector<std::int8_t> hi(n);
      for (std::size_t j = 0; j < n; ++j) {
        lo[j] = static_cast<std::uint32_t>(c[j]);
        hi[j] = static_cast<std::int8_t>(c[j] >> 32);
      }
      for_each_simd_level([&](SimdLevel level) {
        SCOPED_TRACE(testing::Message()
                     << bits << "-bit q, |c| <= " << largest << ", simd " << simd_level_name(level));
        std::vector<u64> o(n);
        lift_signed40(q, static_cast<u64>(largest), lo.data(), hi.data(), o.data(), n);
        for (std::size_t j = 0; j < n; ++j) {
          const auto r = static_cast<std::int64_t>(q.value());
          ASSERT_EQ(o[j], static_cast<u64>(((c[j] % r) + r) % r)) << j;
        }
        if (bits < 32) {
          std::vector<std::uint32_t> o32(n);
          lift_signed40(q, static_cast<u64>(largest), lo.data(), hi.data(), o32.data(), n);
          for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(o32[j], o[j]) << j;
        }
      });
    }
  }
  std::vector<std::uint32_t> lo(8), o32(8);
  std::vector<std::int8_t> hi(8);
  const Modulus wide(generate_ntt_primes(33, 1, 1 << 11)[0]);
  EXPECT_THROW(lift_signed40(wide, 1, lo.data(), hi.data(), o32.data(), 8), std::invalid_argument);
  std::vector<u64> o(8);
  EXPECT_THROW(lift_signed40(wide, u64{1} << 39, lo.data(), hi.data(), o.data(), 8), std::invalid_argument);
}

// Keys in 64-bit words and, for primes below 2^33 (2^32), in 33-bit (32-bit) words too.
TEST(Vecmod, KeySwitchInnerProductMatchesReference) {
  std::mt19937_64 rng(2);
  const std::size_t n = 517;  // SIMD parts of 512 (8 a step) or 516 (4 a step), scalar tails
  std::vector<std::uint32_t> perm(n);
  for (std::size_t j = 0; j < n; ++j) perm[j] = static_cast<std::uint32_t>((j * 7 + 3) % n);
  auto bits_list = kBits;
  bits_list.push_back(32);
  bits_list.push_back(33);
  for (int bits : bits_list) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 11)[0]);
    // 1 to 16 terms: the double-precision sums are reduced after every third product;
    // below 2^30 up to 15 products are summed exactly in 64 bits, 16 take the other path.
    for (std::size_t terms : {1, 2, 3, 4, 7, 8, 15, 16}) {
      std::vector<std::vector<u64>> v, a, b;
      std::vector<const u64*> pv, pa, pb;
      for (std::size_t t = 0; t < terms; ++t) {
        v.push_back(random_residues(q, n, rng));
        a.push_back(random_residues(q, n, rng));
        b.push_back(random_residues(q, n, rng));
      }
      for (std::size_t t = 0; t < terms; ++t) {
        pv.push_back(v[t].data());
        pa.push_back(a[t].data());
        pb.push_back(b[t].data());
      }
      std::vector<std::vector<std::uint32_t>> a32w(terms), b32w(terms);
      std::vector<const std::uint32_t*> a32, b32;
      // And in 33 bits (rlwe::KeyPoly's 33-bit limbs): low words plus a plane of 33rd bits.
      std::vector<std::vector<std::uint8_t>> a_high(terms), b_high(terms);
      std::vector<Words33> a33, b33;
      for (std::size_t t = 0; t < terms; ++t) {
        a32w[t].assign(a[t].begin(), a[t].end());  // truncated above 2^32: only used below it
        b32w[t].assign(b[t].begin(), b[t].end());
        a32.push_back(a32w[t].data());
        b32.push_back(b32w[t].data());
        a_high[t].assign((n + 7) / 8, 0);
        b_high[t].assign((n + 7) / 8, 0);
        for (std::size_t j = 0; j < n; ++j) {
          a_high[t][j / 8] |= static_cast<std::uint8_t>(((a[t][j] >> 32) & 1) << (j % 8));
          b_high[t][j / 8] |= static_cast<std::uint8_t>(((b[t][j] >> 32) & 1) << (j % 8));
        }
        a33.push_back({a32w[t].data(), a_high[t].data()});
        b33.push_back({b32w[t].data(), b_high[t].data()});
      }
      for_each_simd_level([&](SimdLevel level) {
        for (const std::uint32_t* p :
             {static_cast<const std::uint32_t*>(nullptr), static_cast<const std::uint32_t*>(perm.data())}) {
          SCOPED_TRACE(testing::Message() << bits << "-bit q, " << terms << " terms, simd "
                                          << simd_level_name(level) << (p ? ", permuted" : ""));
          std::vector<u64> o0(n), o1(n);
          dot2_vec(q, terms, pv.data(), p, pa.data(), pb.data(), o0.data(), o1.data(), n);
          for (std::size_t j = 0; j < n; ++j) {
            u64 r0 = 0, r1 = 0;
            for (std::size_t t = 0; t < terms; ++t) {
              const u64 x = v[t][p ? p[j] : j];
              r0 = q.add(r0, ref_mul(q, x, a[t][j]));
              r1 = q.add(r1, ref_mul(q, x, b[t][j]));
            }
            ASSERT_EQ(o0[j], r0) << j;
            ASSERT_EQ(o1[j], r1) << j;
          }
          if (q.value() >= (u64{1} << 33)) {
            EXPECT_THROW(dot2_vec(q, terms, pv.data(), p, a33.data(), b33.data(), o0.data(), o1.data(), n),
                         std::invalid_argument);
          } else {
            // Keys in 33-bit words give the same sums.
            std::vector<u64> w0(n), w1(n);
            dot2_vec(q, terms, pv.data(), p, a33.data(), b33.data(), w0.data(), w1.data(), n);
            ASSERT_EQ(w0, o0);
            ASSERT_EQ(w1, o1);
          }
          if (q.value() > UINT32_MAX) {
            EXPECT_THROW(dot2_vec(q, terms, pv.data(), p, a32.data(), b32.data(), o0.data(), o1.data(), n),
                         std::invalid_argument);
            continue;
          }
          // The same keys in 32-bit words (rlwe::KeyPoly's narrow limbs) give the same sums.
          std::vector<u64> w0(n), w1(n);
          dot2_vec(q, terms, pv.data(), p, a32.data(), b32.data(), w0.data(), w1.data(), n);
          ASSERT_EQ(w0, o0);
          ASSERT_EQ(w1, o1);
        }
      });
    }
  }
}

// Every target of `conv` at every SIMD level against the definition, on random residues.
void check_conversion(const BaseConverter& conv, std::uint64_t seed) {
  const RnsBase& from = conv.from();
  const RnsBase& to = conv.to();
  std::mt19937_64 rng(seed);
  const std::size_t n = 1029;
  std::vector<std::vector<u64>> y;
  std::vector<const u64*> py;
  for (std::size_t i = 0; i < from.size(); ++i) {
    y.push_back(random_residues(from[i], n, rng));
    y.back()[0] = from[i].value() - 1;  // the largest products
  }
  for (const auto& v : y) py.push_back(v.data());
  for (std::size_t k = 0; k < to.size(); ++k) {
    const Modulus& p = to[k];
    std::vector<u64> ref(n);
    for (std::size_t j = 0; j < n; ++j) {
      u64 acc = 0;
      for (std::size_t i = 0; i < from.size(); ++i) {
        // (B / b_i) mod p, the constant the conversion multiplies y_i by.
        u64 c = 1;
        for (std::size_t m = 0; m < from.size(); ++m) {
          if (m != i) c = ref_mul(p, c, from[m].value() % p.value());
        }
        acc = p.add(acc, ref_mul(p, y[i][j] % p.value(), c));
      }
      ref[j] = acc;
    }
    for_each_simd_level([&](SimdLevel level) {
      std::vector<u64> out(n);
      conv.convert_target(k, py.data(), out.data(), n);
      EXPECT_EQ(out, ref) << from.size() << " sources, target " << k << " (" << p.bits() << " bits), simd "
                          << simd_level_name(level);
    });
  }
}

TEST(Vecmod, BaseConversionPathsAgree) {
  // Sources of 40 to 61 bits (those above 50 enter the SIMD path split in halves),
  // targets on both sides of the 50-bit limit of the SIMD path.
  const auto ps = generate_ntt_primes({60, 40, 40, 50, 61, 40, 40, 45, 50, 60, 30}, 1 << 11);
  check_conversion(BaseConverter(RnsBase(std::vector<Modulus>(ps.begin(), ps.begin() + 7)),
                                 RnsBase(std::vector<Modulus>(ps.begin() + 7, ps.end()))),
                   3);
}

// The integer-lane path (targets below 2^30, sums below 2^64; sources above 2^32 split at
// bit 30): a digit of 30-bit primes to 30-bit and wider targets; 16 sources of 30 bits
// (still one 64-bit sum), 18 (too many: the double-precision path); 33-, 42- and 60-bit
// sources among 30-bit ones (split), and a 61-bit one (too wide to split in two).
TEST(Vecmod, NarrowBaseConversionMatchesDefinition) {
  const auto p30 = generate_ntt_primes(30, 24, 1 << 11);
  const auto p29 = generate_ntt_primes(29, 2, 1 << 11);
  const auto wide = generate_ntt_primes({33, 31, 44}, 1 << 11);
  const auto base = [](std::vector<u64> v) { return RnsBase(std::vector<Modulus>(v.begin(), v.end())); };
  const std::vector<u64> targets = {p30[20], p30[21], p29[0], wide[1], wide[2]};
  for (std::size_t sources : {1, 2, 8, 16, 18}) {
    check_conversion(
        BaseConverter(base({p30.begin(), p30.begin() + static_cast<long>(sources)}), base(targets)), sources);
  }
  check_conversion(BaseConverter(base({p30[0], wide[0], p30[1], p29[1]}), base({p30[22], p30[23]})), 5);
  const auto big = generate_ntt_primes({42, 60, 61}, 1 << 11);
  check_conversion(BaseConverter(base({big[0], p30[2], p30[3], p30[4]}), base({p30[22], p29[0], wide[2]})),
                   6);
  check_conversion(BaseConverter(base({big[1], p30[2], big[0]}), base({p30[22], p30[23]})), 7);
  check_conversion(BaseConverter(base({big[2], p30[2]}), base({p30[22], p30[23]})), 8);
}

TEST(Vecmod, SimdServesPrimesUpTo50Bits) {
  const Modulus small(generate_ntt_primes(50, 1, 1 << 11)[0]), big(generate_ntt_primes(51, 1, 1 << 11)[0]);
  EXPECT_EQ(vecmod_simd(small), cpu_features().avx2_fma && simd_enabled());
  EXPECT_FALSE(vecmod_simd(big));
  EXPECT_EQ(vecmod_level(small) == SimdLevel::kAvx512, simd_level() == SimdLevel::kAvx512);
  const Modulus tiny(generate_ntt_primes(12, 1, 1 << 5)[0]);  // below IFMA's 13 bits
  EXPECT_NE(vecmod_level(tiny), SimdLevel::kAvx512);
  set_simd_level(SimdLevel::kAvx2);
  EXPECT_NE(vecmod_level(small), SimdLevel::kAvx512);
  set_simd_enabled(false);
  EXPECT_FALSE(vecmod_simd(small));
  set_simd_enabled(true);
}

// The key-switching inner product at the sizes the engine uses (N = 2^10..2^16), each
// path against the scalar one; N = 64 with 4100 terms passes the IFMA kernel's fold of
// its sums (every 2^11 terms) twice.
TEST(Vecmod, InnerProductAtRingSizes) {
  std::mt19937_64 rng(7);
  for (int log_n : {6, 10, 13, 16}) {
    const std::size_t n = std::size_t{1} << log_n;
    for (int bits : {36, 50}) {
      const Modulus q(generate_ntt_primes(bits, 1, 2 * n)[0]);
      const std::size_t terms = log_n == 6 ? 4100 : 5;
      std::vector<std::vector<u64>> v, a, b;
      std::vector<const u64*> pv, pa, pb;
      for (std::size_t t = 0; t < terms; ++t) {
        v.push_back(random_residues(q, n, rng));
        a.push_back(random_residues(q, n, rng));
        b.push_back(random_residues(q, n, rng));
        pv.push_back(v.back().data());
        pa.push_back(a.back().data());
        pb.push_back(b.back().data());
      }
      std::vector<u64> r0(n), r1(n);
      set_simd_level(SimdLevel::kScalar);
      dot2_vec(q, terms, pv.data(), nullptr, pa.data(), pb.data(), r0.data(), r1.data(), n);
      for_each_simd_level([&](SimdLevel level) {
        std::vector<u64> o0(n), o1(n);
        dot2_vec(q, terms, pv.data(), nullptr, pa.data(), pb.data(), o0.data(), o1.data(), n);
        ASSERT_EQ(o0, r0) << "n 2^" << log_n << ", " << bits << "-bit q, " << simd_level_name(level);
        ASSERT_EQ(o1, r1) << "n 2^" << log_n << ", " << bits << "-bit q, " << simd_level_name(level);
      });
    }
  }
}

// The scalar inner product's 128-bit sums with wide primes: products of 61-bit residues
// lie below 2^122, so 600 terms of q - 1 would overflow 2^128 without the fold every 63
// terms (bfv::Evaluator::multiply_accumulate takes hundreds); against the sum reduced
// term by term, at every level (wide primes run the scalar path at each).
TEST(Vecmod, InnerProductFoldsWideSums) {
  std::mt19937_64 rng(11);
  const std::size_t n = 19, terms = 600;
  for (int bits : {55, 61}) {
    const Modulus q(generate_ntt_primes(bits, 1, 64)[0]);
    std::vector<std::vector<u64>> v, a, b;
    std::vector<const u64*> pv, pa, pb;
    for (std::size_t t = 0; t < terms; ++t) {
      v.push_back(t % 2 ? std::vector<u64>(n, q.value() - 1) : random_residues(q, n, rng));
      a.push_back(std::vector<u64>(n, q.value() - 1));
      b.push_back(random_residues(q, n, rng));
      pv.push_back(v.back().data());
      pa.push_back(a.back().data());
      pb.push_back(b.back().data());
    }
    std::vector<u64> r0(n, 0), r1(n, 0);
    for (std::size_t t = 0; t < terms; ++t)
      for (std::size_t j = 0; j < n; ++j) {
        r0[j] = q.add(r0[j], ref_mul(q, v[t][j], a[t][j]));
        r1[j] = q.add(r1[j], ref_mul(q, v[t][j], b[t][j]));
      }
    for_each_simd_level([&](SimdLevel level) {
      std::vector<u64> o0(n), o1(n);
      dot2_vec(q, terms, pv.data(), nullptr, pa.data(), pb.data(), o0.data(), o1.data(), n);
      ASSERT_EQ(o0, r0) << bits << "-bit q, " << simd_level_name(level);
      ASSERT_EQ(o1, r1) << bits << "-bit q, " << simd_level_name(level);
    });
  }
}

}  // namespace
}  // namespace veil::math
