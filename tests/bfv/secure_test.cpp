// The exact scheme at the 128-bit parameters select_parameters picks (label "slow": the
// suite name Secure matches VEIL_SLOW_TESTS): a convolution and a Beaver triple batch end
// to end, both roles, through flooding, switching and extraction, against the clear result,
// with the responses' noise inside the derived bound.
#include <gtest/gtest.h>

#include "bfv_test_util.hpp"
#include "veil/bfv/conv_layout.hpp"
#include "veil/bfv/serialize.hpp"

namespace veil::test {
namespace {

TEST(Secure, BfvConvolutionAtSelectedParameters) {
  const bfv::ConvShape s{16, 8, 8, 12, 3, 3, 1, 1};
  bfv::ParameterRequest r;
  r.t_bits = 41;
  r.max_l1_norm = 64.0 * 9 * 4096;  // the CIFAR layer's bound: covers this smaller layer
  const auto prm = bfv::select_parameters(r);
  ASSERT_TRUE(prm.is_128_bit_secure());
  BfvFixture f(prm);
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const u64 t = f.t();
  const bfv::ConvLayout lay(s, f.ctx->n());
  const auto x = random_mod(static_cast<std::size_t>(s.in_channels) * s.height * s.width, t, g);
  const auto k = random_signed(static_cast<std::size_t>(s.out_channels) * s.in_channels * 9, 4095, g);
  std::vector<bfv::Ciphertext> up;
  for (int b = 0; b < lay.input_blocks(); ++b)
    up.push_back(bfv::load_ciphertext(
        *f.ctx,
        bfv::save_ciphertext(*f.ctx, f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, lay.encode_input(b, x, t))))));
  const auto nb = bfv::noise_bounds(f.ctx->params());
  const math::Modulus tm(t);
  for (int o = 0; o < lay.output_blocks(); ++o) {
    std::vector<bfv::PreparedPlaintext> w;
    std::vector<const bfv::Ciphertext*> cp;
    std::vector<const bfv::PreparedPlaintext*> wp;
    for (int b = 0; b < lay.input_blocks(); ++b)
      w.push_back(f.eval->prepare(bfv::Plaintext(*f.ctx, lay.encode_kernel(o, b, k, t))));
    for (int b = 0; b < lay.input_blocks(); ++b) {
      cp.push_back(&up[b]);
      wp.push_back(&w[b]);
    }
    auto acc = f.eval->multiply_accumulate(cp, wp);
    const auto idx = lay.output_indices(o);
    const auto resp =
        bfv::load_response(*f.ctx, bfv::save_response(*f.ctx, f.flooder->finalize(std::move(acc), idx)), idx);
    const auto got = f.dec->decrypt(resp);
    double worst = 0;
    for (double v : f.dec->noise(resp)) worst = std::max(worst, std::fabs(v));
    EXPECT_LE(worst, static_cast<double>(nb.after_switch));
    // Clear reference for this block's outputs.
    std::size_t at = 0;
    for (int ml = 0; ml < lay.out_channel_count(o); ++ml) {
      const int m = lay.out_channel_begin(o) + ml;
      for (int i = 0; i < lay.out_height(); ++i)
        for (int j = 0; j < lay.out_width(); ++j, ++at) {
          u64 want = 0;
          for (int c = 0; c < s.in_channels; ++c)
            for (int l = 0; l < 3; ++l)
              for (int lp = 0; lp < 3; ++lp) {
                const int y = i + l - 1, xx = j + lp - 1;
                if (y < 0 || y >= s.height || xx < 0 || xx >= s.width) continue;
                want = tm.add(
                    want,
                    tm.mul(x[(static_cast<std::size_t>(c) * s.height + y) * s.width + xx],
                           tm.from_signed(
                               k[((static_cast<std::size_t>(m) * s.in_channels + c) * 3 + l) * 3 + lp])));
              }
          ASSERT_EQ(got[at], want) << "output " << m << "," << i << "," << j;
        }
    }
  }
}

TEST(Secure, BfvBeaverBatchAtSelectedParameters) {
  bfv::ParameterRequest r;
  r.t_bits = 41;  // arbitrary plaintexts (SIMD): L = N t / 2
  BfvFixture f(bfv::select_parameters(r));
  ASSERT_TRUE(f.ctx->params().is_128_bit_secure());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  bfv::BatchEncoder enc(f.ctx);
  const auto a = random_mod(n, f.t(), g), b = random_mod(n, f.t(), g), mask = random_mod(n, f.t(), g);
  auto ct = f.sk_enc->encrypt(enc.encode(a));
  f.eval->multiply_plain_inplace(ct, f.eval->prepare(enc.encode(b)));
  f.eval->sub_plain_inplace(ct, enc.encode(mask));
  std::vector<std::uint32_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::uint32_t>(i);
  const auto slots = enc.decode(f.dec->decrypt(f.flooder->finalize(std::move(ct), all)));
  const math::Modulus tm(f.t());
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(slots[i], tm.sub(tm.mul(a[i], b[i]), mask[i])) << "slot " << i;
}

}  // namespace
}  // namespace veil::test
