#include "veil/bfv/conv_layout.hpp"

#include <algorithm>

#include "veil/common/error.hpp"

namespace veil::bfv {

namespace {
int ceil_div(int a, int b) { return (a + b - 1) / b; }
}  // namespace

ConvLayout::ConvLayout(const ConvShape& shape, std::size_t n, int channels_per_input) : shape_(shape), n_(n) {
  const ConvShape& s = shape;
  VEIL_REQUIRE(s.in_channels >= 1 && s.height >= 1 && s.width >= 1 && s.out_channels >= 1 &&
                   s.kernel_h >= 1 && s.kernel_w >= 1 && s.stride >= 1 && s.pad >= 0,
               "invalid convolution shape: C=" << s.in_channels << " H=" << s.height << " W=" << s.width
                                               << " M=" << s.out_channels << " kernel " << s.kernel_h << "x"
                                               << s.kernel_w << " stride " << s.stride << " pad " << s.pad);
  VEIL_REQUIRE(!s.depthwise || s.in_channels == s.out_channels,
               "a depthwise convolution has as many output channels as input channels, got "
                   << s.in_channels << " -> " << s.out_channels);
  VEIL_REQUIRE(n >= 2 && (n & (n - 1)) == 0, "ring degree " << n << " is not a power of two");
  // A 1x1 kernel with stride s reads only every s-th pixel each way: the layout holds
  // just those (s^2 times fewer coefficients per channel, so more channels per
  // ciphertext and fewer blocks), and the convolution on them has stride 1. A
  // downsampling residual block's projection shortcut is one.
  sub_ = s.kernel_h == 1 && s.kernel_w == 1 && s.pad == 0 ? s.stride : 1;
  stride_ = s.stride / sub_;
  hp_ = (s.height + sub_ - 1) / sub_ + 2 * s.pad;
  wp_ = (s.width + sub_ - 1) / sub_ + 2 * s.pad;
  VEIL_REQUIRE(s.kernel_h <= hp_ && s.kernel_w <= wp_, "kernel " << s.kernel_h << "x" << s.kernel_w
                                                                 << " exceeds the padded input " << hp_ << "x"
                                                                 << wp_);
  const std::size_t hw = static_cast<std::size_t>(hp_) * static_cast<std::size_t>(wp_);
  VEIL_REQUIRE(hw <= n, "one padded channel (" << hp_ << "x" << wp_ << " = " << hw
                                               << " coefficients) exceeds N = " << n
                                               << "; splitting images spatially is not implemented, use a "
                                                  "larger ring degree");
  out_h_ = (hp_ - s.kernel_h) / stride_ + 1;
  out_w_ = (wp_ - s.kernel_w) / stride_ + 1;
  const int max_cp = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(s.in_channels), n / hw));
  auto m_for = [&](int cp) {
    return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(s.out_channels),
                                                  n / (static_cast<std::size_t>(cp) * hw)));
  };
  if (channels_per_input > 0) {
    VEIL_REQUIRE(channels_per_input <= max_cp, "channels per input ciphertext " << channels_per_input
                                                                                << " exceeds " << max_cp
                                                                                << " (N / H'W')");
    c_p_ = channels_per_input;
  } else {
    // Fewest ciphertexts each way; on ties the larger C_p (fewer products).
    c_p_ = 1;
    int best = -1;
    for (int cp = 1; cp <= max_cp; ++cp) {
      const int cost = ceil_div(s.in_channels, cp) + ceil_div(s.out_channels, m_for(cp));
      if (best < 0 || cost <= best) {
        best = cost;
        c_p_ = cp;
      }
    }
  }
  m_p_ = m_for(c_p_);
  in_blocks_ = ceil_div(s.in_channels, c_p_);
  out_blocks_ = ceil_div(s.out_channels, m_p_);
  s_ = static_cast<std::size_t>(c_p_) * hw;
  o_ = static_cast<std::size_t>(c_p_ - 1) * hw + static_cast<std::size_t>(s.kernel_h - 1) * wp_ +
       static_cast<std::size_t>(s.kernel_w - 1);
}

int ConvLayout::in_channel_count(int b) const {
  return std::min(c_p_, shape_.in_channels - in_channel_begin(b));
}
int ConvLayout::out_channel_count(int o) const {
  return std::min(m_p_, shape_.out_channels - out_channel_begin(o));
}

bool ConvLayout::block_used(int out_block, int in_block) const {
  VEIL_REQUIRE(
      out_block >= 0 && out_block < out_blocks_ && in_block >= 0 && in_block < in_blocks_,
      "block (" << out_block << ", " << in_block << ") outside " << out_blocks_ << " x " << in_blocks_);
  if (!shape_.depthwise) return true;
  return std::max(out_channel_begin(out_block), in_channel_begin(in_block)) <
         std::min(out_channel_begin(out_block) + out_channel_count(out_block),
                  in_channel_begin(in_block) + in_channel_count(in_block));
}

std::vector<u64> ConvLayout::encode_input(int b, std::span<const u64> tensor, u64 t) const {
  VEIL_REQUIRE(b >= 0 && b < in_blocks_, "input block " << b << " outside 0.." << in_blocks_ - 1);
  const ConvShape& s = shape_;
  const std::size_t size = static_cast<std::size_t>(s.in_channels) * s.height * s.width;
  VEIL_REQUIRE(tensor.size() == size,
               "input tensor has " << tensor.size() << " values, the shape needs " << size);
  std::vector<u64> out(n_, 0);
  const std::size_t hw = static_cast<std::size_t>(hp_) * wp_;
  for (int cl = 0; cl < in_channel_count(b); ++cl) {
    const int c = in_channel_begin(b) + cl;
    for (int y = 0; y < s.height; y += sub_) {
      for (int x = 0; x < s.width; x += sub_) {
        const u64 v = tensor[(static_cast<std::size_t>(c) * s.height + y) * s.width + x];
        VEIL_REQUIRE(v < t, "input value " << v << " is not reduced mod t = " << t);
        out[cl * hw + static_cast<std::size_t>(y / sub_ + s.pad) * wp_ + (x / sub_ + s.pad)] = v;
      }
    }
  }
  return out;
}

std::vector<u64> ConvLayout::encode_kernel(int out_block, int in_block, std::span<const std::int64_t> kernel,
                                           u64 t) const {
  VEIL_REQUIRE(out_block >= 0 && out_block < out_blocks_,
               "output block " << out_block << " outside 0.." << out_blocks_ - 1);
  VEIL_REQUIRE(in_block >= 0 && in_block < in_blocks_,
               "input block " << in_block << " outside 0.." << in_blocks_ - 1);
  const ConvShape& s = shape_;
  const std::size_t size = static_cast<std::size_t>(s.out_channels) * s.in_channels * s.kernel_h * s.kernel_w;
  VEIL_REQUIRE(kernel.size() == size, "kernel has " << kernel.size() << " values, the shape needs " << size);
  const math::Modulus tm(t);
  std::vector<u64> out(n_, 0);
  const std::size_t hw = static_cast<std::size_t>(hp_) * wp_;
  for (int ml = 0; ml < out_channel_count(out_block); ++ml) {
    const int m = out_channel_begin(out_block) + ml;
    for (int cl = 0; cl < in_channel_count(in_block); ++cl) {
      const int c = in_channel_begin(in_block) + cl;
      for (int l = 0; l < s.kernel_h; ++l) {
        for (int lp = 0; lp < s.kernel_w; ++lp) {
          const std::int64_t w =
              kernel[((static_cast<std::size_t>(m) * s.in_channels + c) * s.kernel_h + l) * s.kernel_w + lp];
          const std::size_t at = ml * s_ + o_ - cl * hw - static_cast<std::size_t>(l) * wp_ - lp;
          out[at] = tm.from_signed(w);
        }
      }
    }
  }
  return out;
}

std::vector<std::uint32_t> ConvLayout::output_indices(int out_block) const {
  VEIL_REQUIRE(out_block >= 0 && out_block < out_blocks_,
               "output block " << out_block << " outside 0.." << out_blocks_ - 1);
  std::vector<std::uint32_t> idx;
  idx.reserve(static_cast<std::size_t>(out_channel_count(out_block)) * out_h_ * out_w_);
  for (int ml = 0; ml < out_channel_count(out_block); ++ml)
    for (int i = 0; i < out_h_; ++i)
      for (int j = 0; j < out_w_; ++j)
        idx.push_back(static_cast<std::uint32_t>(ml * s_ + o_ + static_cast<std::size_t>(i) * stride_ * wp_ +
                                                 static_cast<std::size_t>(j) * stride_));
  return idx;
}

}  // namespace veil::bfv
