// Coefficient-encoded convolutions and matrix-vector products (Cheetah layout) against a
// plain convolution mod t: first as plain polynomial products (every shape, strides,
// padding, channel counts, forced channel splits), then end to end under encryption with
// flooding, modulus switching and extraction, both roles in one process.
#include <gtest/gtest.h>

#include "bfv_test_util.hpp"
#include "error_test_util.hpp"
#include "veil/bfv/conv_layout.hpp"

namespace veil::test {
namespace {

// out[m][i][j] = sum_{c,l,l'} K[m][c][l][l'] X[c][i s + l - pad][j s + l' - pad] mod t.
std::vector<u64> plain_conv(const bfv::ConvShape& s, const std::vector<u64>& x,
                            const std::vector<std::int64_t>& k, u64 t) {
  const int hp = s.height + 2 * s.pad, wp = s.width + 2 * s.pad;
  const int oh = (hp - s.kernel_h) / s.stride + 1, ow = (wp - s.kernel_w) / s.stride + 1;
  const math::Modulus tm(t);
  std::vector<u64> out(static_cast<std::size_t>(s.out_channels) * oh * ow, 0);
  for (int m = 0; m < s.out_channels; ++m)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) {
        u64 acc = 0;
        for (int c = 0; c < s.in_channels; ++c)
          for (int l = 0; l < s.kernel_h; ++l)
            for (int lp = 0; lp < s.kernel_w; ++lp) {
              const int y = i * s.stride + l - s.pad, xx = j * s.stride + lp - s.pad;
              if (y < 0 || y >= s.height || xx < 0 || xx >= s.width) continue;
              const u64 v = x[(static_cast<std::size_t>(c) * s.height + y) * s.width + xx];
              const std::int64_t w =
                  k[((static_cast<std::size_t>(m) * s.in_channels + c) * s.kernel_h + l) * s.kernel_w + lp];
              acc = tm.add(acc, tm.mul(v, tm.from_signed(w)));
            }
        out[(static_cast<std::size_t>(m) * oh + i) * ow + j] = acc;
      }
  return out;
}

// Scatters block o's outputs (in output_indices order) into the full (M, OH, OW) tensor.
void place(const bfv::ConvLayout& lay, int o, const std::vector<u64>& vals, std::vector<u64>& out) {
  std::size_t k = 0;
  const std::size_t plane = static_cast<std::size_t>(lay.out_height()) * lay.out_width();
  for (int ml = 0; ml < lay.out_channel_count(o); ++ml)
    for (std::size_t p = 0; p < plane; ++p) out[(lay.out_channel_begin(o) + ml) * plane + p] = vals[k++];
}

// A random kernel of the shape, |w| <= bound, zero off the diagonal when depthwise.
std::vector<std::int64_t> random_kernel(const bfv::ConvShape& s, std::int64_t bound, std::mt19937_64& g) {
  auto k = random_signed(static_cast<std::size_t>(s.out_channels) * s.in_channels * s.kernel_h * s.kernel_w,
                         bound, g);
  if (s.depthwise)
    for (std::size_t i = 0; i < k.size(); ++i) {
      const std::size_t mc = i / (static_cast<std::size_t>(s.kernel_h) * s.kernel_w);
      if (mc / static_cast<std::size_t>(s.in_channels) != mc % static_cast<std::size_t>(s.in_channels))
        k[i] = 0;
    }
  return k;
}

void check_plain(const bfv::ConvShape& s, std::size_t n, int cp, std::uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " C=" << s.in_channels << " HxW=" << s.height << "x"
                                    << s.width << " M=" << s.out_channels << " k=" << s.kernel_h << "x"
                                    << s.kernel_w << " stride " << s.stride << " pad " << s.pad << " cp "
                                    << cp);
  std::mt19937_64 g(seed);
  const u64 t = bfv::plaintext_prime(20, 10);
  const bfv::ConvLayout lay(s, n, cp);
  const auto x = random_mod(static_cast<std::size_t>(s.in_channels) * s.height * s.width, t, g);
  const auto k = random_kernel(s, 50, g);
  const math::Modulus tm(t);
  std::vector<u64> got(static_cast<std::size_t>(s.out_channels) * lay.out_height() * lay.out_width(), 0);
  for (int o = 0; o < lay.output_blocks(); ++o) {
    std::vector<u64> acc(n, 0);
    for (int b = 0; b < lay.input_blocks(); ++b) {
      if (!lay.block_used(o, b)) continue;  // zeros only (depthwise)
      const auto prod = negacyclic_mod(lay.encode_input(b, x, t), lay.encode_kernel(o, b, k, t), t);
      for (std::size_t j = 0; j < n; ++j) acc[j] = tm.add(acc[j], prod[j]);
    }
    std::vector<u64> vals;
    for (auto idx : lay.output_indices(o)) vals.push_back(acc[idx]);
    place(lay, o, vals, got);
  }
  EXPECT_EQ(got, plain_conv(s, x, k, t));
}

TEST(BfvConvLayout, PolynomialProductIsTheConvolution) {
  const std::uint64_t seed = fresh_seed();
  const std::vector<bfv::ConvShape> shapes = {{3, 5, 5, 4, 3, 3, 1, 1},
                                              {5, 6, 4, 3, 3, 3, 2, 0},
                                              {8, 4, 4, 6, 2, 3, 1, 1},
                                              {1, 7, 7, 2, 5, 5, 2, 2},
                                              {2, 9, 9, 5, 3, 3, 3, 1},
                                              {16, 3, 3, 16, 3, 3, 1, 1},
                                              {4, 8, 8, 1, 1, 1, 1, 0},
                                              bfv::ConvShape::matvec(40, 7),
                                              bfv::ConvShape::matvec(300, 5),
                                              // 1x1 with a stride: only the pixels read are laid out.
                                              {5, 9, 7, 6, 1, 1, 2, 0},
                                              {3, 8, 8, 4, 1, 1, 3, 0},
                                              {16, 6, 6, 24, 1, 1, 2, 0}};
  for (const auto& s : shapes) check_plain(s, 256, 0, seed);
  // Forced splits: one channel per input (many output channels per ciphertext) and the most.
  check_plain({6, 4, 4, 5, 3, 3, 1, 1}, 256, 1, seed);
  check_plain({6, 4, 4, 5, 3, 3, 1, 1}, 256, 6, seed);
  check_plain({6, 4, 4, 5, 3, 3, 2, 1}, 256, 2, seed);
  // Depthwise: the blocks with no channel in common are skipped.
  for (int split : {0, 1, 2, 3, 5})
    for (const bfv::ConvShape& s :
         {bfv::ConvShape{7, 4, 4, 7, 1, 1, 1, 0, true}, bfv::ConvShape{5, 3, 3, 5, 3, 3, 1, 1, true},
          bfv::ConvShape{6, 4, 4, 6, 3, 3, 2, 1, true}})
      check_plain(s, 256, split, seed);
}

TEST(BfvConvLayout, AStridedPointwiseConvolutionLaysOutOnlyThePixelsItReads) {
  // A downsampling block's shortcut, 64 -> 128 channels from 32 x 32, at N = 8192.
  const bfv::ConvLayout strided({64, 32, 32, 128, 1, 1, 2, 0}, 8192),
      full({64, 16, 16, 128, 1, 1, 1, 0}, 8192);
  EXPECT_EQ(strided.out_height(), 16);
  EXPECT_EQ(strided.out_width(), 16);
  EXPECT_EQ(strided.input_blocks(), full.input_blocks());
  EXPECT_EQ(strided.output_blocks(), full.output_blocks());
  EXPECT_LE(strided.input_blocks() * strided.output_blocks(), 256);  // 1024 with every pixel laid out
  EXPECT_EQ(strided.output_indices(0), full.output_indices(0));
}

TEST(BfvConvLayout, DepthwiseUsesOnlyBlocksWithChannelsInCommon) {
  // A batch norm on 64 channels of 32 x 32 at N = 8192: C_p M_p <= 8.
  const bfv::ConvLayout lay({64, 32, 32, 64, 1, 1, 1, 0, true}, 8192);
  int used = 0;
  for (int o = 0; o < lay.output_blocks(); ++o) {
    int reads = 0;
    for (int b = 0; b < lay.input_blocks(); ++b) {
      const bool overlap = lay.in_channel_begin(b) < lay.out_channel_begin(o) + lay.out_channel_count(o) &&
                           lay.out_channel_begin(o) < lay.in_channel_begin(b) + lay.in_channel_count(b);
      EXPECT_EQ(lay.block_used(o, b), overlap) << o << ", " << b;
      reads += lay.block_used(o, b);
    }
    EXPECT_GE(reads, 1);
    used += reads;
  }
  EXPECT_EQ(used, std::max(lay.input_blocks(), lay.output_blocks()));
  EXPECT_LT(used, lay.input_blocks() * lay.output_blocks() / 8);
  EXPECT_EQ(lay.l1_bound(10), 10.0);
  const bfv::ConvLayout dense({64, 32, 32, 64, 1, 1, 1, 0}, 8192);
  EXPECT_TRUE(dense.block_used(0, dense.input_blocks() - 1));
  EXPECT_NE(what_of([] {
              bfv::ConvLayout({8, 4, 4, 6, 1, 1, 1, 0, true}, 256);
            }).find("depthwise"),
            std::string::npos);
}

TEST(BfvConvLayout, BlocksAndRefusals) {
  const bfv::ConvLayout lay({64, 32, 32, 64, 3, 3, 1, 1}, 8192);
  // 34 x 34 = 1156 coefficients per channel: C_p M_p <= 7.
  EXPECT_LE(lay.channels_per_input() * lay.channels_per_output() * 1156, 8192);
  EXPECT_EQ(lay.out_height(), 32);
  EXPECT_EQ(lay.output_indices(0).size(), static_cast<std::size_t>(lay.out_channel_count(0)) * 32 * 32);
  EXPECT_EQ(lay.l1_bound(10), 64.0 * 9 * 10);
  EXPECT_NE(what_of([] {
              bfv::ConvLayout({1, 100, 100, 1, 3, 3, 1, 0}, 4096);
            }).find("spatially"),
            std::string::npos);
  EXPECT_NE(what_of([] {
              bfv::ConvLayout({1, 4, 4, 1, 5, 5, 1, 0}, 4096);
            }).find("exceeds the padded input"),
            std::string::npos);
  EXPECT_NE(what_of([] {
              bfv::ConvLayout({8, 4, 4, 1, 3, 3, 1, 0}, 64, 5);
            }).find("channels per input"),
            std::string::npos);
}

// Both roles: the client encrypts its share r of the input, the server computes W r - s
// under encryption, floods, switches and extracts; the client decrypts and adds s back.
TEST(BfvConvLayout, EncryptedConvolutionWithFloodingMatchesPlain) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  for (const bfv::ConvShape& s :
       {bfv::ConvShape{6, 6, 6, 5, 3, 3, 1, 1}, bfv::ConvShape{3, 8, 8, 4, 3, 3, 2, 0},
        bfv::ConvShape::matvec(100, 20), bfv::ConvShape{12, 5, 5, 12, 3, 3, 1, 1, true},
        bfv::ConvShape{10, 9, 9, 14, 1, 1, 2, 0}}) {
    const bfv::ConvLayout lay(s, f.ctx->n());
    ASSERT_LE(lay.l1_bound(8), f.ctx->params().max_l1_norm);
    const u64 t = f.t();
    const auto r = random_mod(static_cast<std::size_t>(s.in_channels) * s.height * s.width, t, g);
    const auto k = random_kernel(s, 8, g);
    // Client.
    std::vector<bfv::Ciphertext> up;
    for (int b = 0; b < lay.input_blocks(); ++b)
      up.push_back(f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, lay.encode_input(b, r, t))));
    // Server.
    const math::Modulus tm(t);
    std::vector<u64> got(static_cast<std::size_t>(s.out_channels) * lay.out_height() * lay.out_width());
    for (int o = 0; o < lay.output_blocks(); ++o) {
      std::vector<bfv::PreparedPlaintext> w;
      std::vector<const bfv::Ciphertext*> cp;
      std::vector<const bfv::PreparedPlaintext*> wp;
      std::vector<int> used;
      for (int b = 0; b < lay.input_blocks(); ++b)
        if (lay.block_used(o, b)) used.push_back(b);
      w.reserve(used.size());
      for (int b : used) {
        w.push_back(f.eval->prepare(bfv::Plaintext(*f.ctx, lay.encode_kernel(o, b, k, t))));
        cp.push_back(&up[static_cast<std::size_t>(b)]);
        wp.push_back(&w.back());
      }
      auto acc = f.eval->multiply_accumulate(cp, wp);
      const auto idx = lay.output_indices(o);
      std::vector<u64> mask(f.ctx->n(), 0), s_vals;
      for (auto i : idx) s_vals.push_back(mask[i] = g() % t);
      f.eval->sub_plain_inplace(acc, bfv::Plaintext(*f.ctx, mask));
      const auto resp = f.flooder->finalize(std::move(acc), idx);
      EXPECT_EQ(resp.level, f.ctx->params().response_level);
      // Client: W r - s, plus the server's share s.
      auto vals = f.dec->decrypt(resp);
      for (std::size_t i = 0; i < vals.size(); ++i) vals[i] = tm.add(vals[i], s_vals[i]);
      place(lay, o, vals, got);
    }
    EXPECT_EQ(got, plain_conv(s, r, k, t));
  }
}

}  // namespace
}  // namespace veil::test
