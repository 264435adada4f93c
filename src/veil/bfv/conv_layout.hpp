// Coefficient encoding of convolutions and matrix-vector products (Cheetah, Huang et al.,
// USENIX Security 2022, section 4.1): one ciphertext x plaintext product computes a whole
// block of a convolution, with no rotations.
//
// The padded input (C, H', W') is split into blocks of C_p channels; block b is the
// polynomial T(X) = sum T[c, y, x] X^(c H'W' + y W' + x) (S = C_p H'W' <= N coefficients).
// The kernel of M_p output channels for input block b is
//   K(X) = sum_m X^(m S) sum_{c, l, l'} K[m, c, l, l'] X^(O - c H'W' - l W' - l'),
//   O = (C_p - 1) H'W' + (kh - 1) W' + (kw - 1),
// and the coefficient m S + O + i W' + j of T K is output (m, i, j) of the stride-1 valid
// correlation over the block's channels: for output channel m the product's support is
// [m S, m S + S + O), its outputs fill [m S + O, m S + S), so the neighbours' supports end
// before (channel m - 1) or start after (m + 1) them, and with M_p S <= N the part past
// X^N wraps (negated) into [0, O), below every output. Summing the products over the input
// blocks sums over all channels. Stride s keeps the outputs at i s W' + j s; padding is
// zeros in the input layout. A matrix-vector product y = A x is the 1x1 convolution with
// C = len(x), H = W = 1 (ConvShape::matvec).
//
// C_p M_p H'W' <= N: the split between input and output channels per ciphertext is free;
// the default minimises the ciphertexts sent each way (input blocks + output blocks).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/math/modarith.hpp"

namespace veil::bfv {

using math::u64;

struct ConvShape {
  int in_channels = 0, height = 0, width = 0;  // input (C, H, W), before padding
  int out_channels = 0, kernel_h = 0, kernel_w = 0;
  int stride = 1;
  int pad = 0;  // zeros on every side
  // Each output channel reads only the input channel of its own index (out_channels ==
  // in_channels): a per-channel layer, such as a batch norm on a residual stream. The
  // kernel is still (M, C, kh, kw) with zeros off the diagonal; the blocks that hold
  // only those zeros are skipped (ConvLayout::block_used), which is why the flag is part
  // of the public shape: what the server skips depends on it alone, never on the values.
  bool depthwise = false;
  // Public bound on the L1 norm multiplied into one output (every input block), for
  // BfvParameters::max_l1_norm: C kh kw max|w|, kh kw max|w| when depthwise. It does not
  // depend on the ring degree, so parameters can be chosen before any layout.
  double l1_bound(double max_abs_weight) const {
    return static_cast<double>(depthwise ? 1 : in_channels) * kernel_h * kernel_w * max_abs_weight;
  }
  // y = A x, A of out x in: a 1x1 convolution over `in` channels of 1x1 images.
  static ConvShape matvec(int in, int out) { return ConvShape{in, 1, 1, out, 1, 1, 1, 0}; }
};

class ConvLayout {
 public:
  // channels_per_input = 0 chooses C_p; otherwise it is used (1..min(C, N / H'W')).
  // Throws std::invalid_argument if one padded image does not fit (H'W' > N: spatial
  // splitting is not implemented) or the shape is invalid.
  ConvLayout(const ConvShape& shape, std::size_t n, int channels_per_input = 0);

  const ConvShape& shape() const { return shape_; }
  std::size_t n() const { return n_; }
  int input_blocks() const { return in_blocks_; }
  int output_blocks() const { return out_blocks_; }
  int channels_per_input() const { return c_p_; }
  int channels_per_output() const { return m_p_; }
  int out_height() const { return out_h_; }
  int out_width() const { return out_w_; }
  // First channel and number of channels of an input / output block.
  int in_channel_begin(int b) const { return b * c_p_; }
  int in_channel_count(int b) const;
  int out_channel_begin(int o) const { return o * m_p_; }
  int out_channel_count(int o) const;

  // Whether output block o reads input block b: always, except for a depthwise shape,
  // where only blocks with channels in common do.
  bool block_used(int out_block, int in_block) const;
  // Tensor (C, H, W) row-major, values mod t -> the N coefficients of input block b.
  std::vector<u64> encode_input(int b, std::span<const u64> tensor, u64 t) const;
  // Kernel (M, C, kh, kw) row-major, signed -> N coefficients mod t for (out block, in block).
  std::vector<u64> encode_kernel(int out_block, int in_block, std::span<const std::int64_t> kernel,
                                 u64 t) const;
  // Coefficient index of each output (m, i, j) of out_block, m-major then i, then j; the
  // channel is out_channel_begin(out_block) + m.
  std::vector<std::uint32_t> output_indices(int out_block) const;
  // ConvShape::l1_bound of the shape.
  double l1_bound(double max_abs_weight) const { return shape_.l1_bound(max_abs_weight); }

 private:
  ConvShape shape_;
  std::size_t n_;
  int sub_, stride_;  // input pixels kept every sub_ each way; the stride on them
  int hp_, wp_, out_h_, out_w_;
  int c_p_, m_p_, in_blocks_, out_blocks_;
  std::size_t s_, o_;
};

}  // namespace veil::bfv
