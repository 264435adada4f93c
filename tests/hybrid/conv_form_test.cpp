// Recovering convolutions from the quantised stages: the recovered kernel, applied as a
// plain convolution, must give exactly the stage's matrix product; anything that is not a
// convolution must be refused (and then served as a matrix-vector product).
#include <gtest/gtest.h>

#include <random>

#include "veil/hybrid/conv_form.hpp"
#include "veil/hybrid/linear.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/mpc/share.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"

namespace veil::hybrid {
namespace {

// y = conv(x) over Z_p with the form's shape, direct loops.
std::vector<u64> plain_conv(const mpc::Field& f, const ConvForm& c, std::span<const u64> x) {
  const auto& s = c.shape;
  const int ho = (s.height + 2 * s.pad - s.kernel_h) / s.stride + 1;
  const int wo = (s.width + 2 * s.pad - s.kernel_w) / s.stride + 1;
  std::vector<u64> y(static_cast<std::size_t>(s.out_channels * ho * wo), 0);
  for (int m = 0; m < s.out_channels; ++m)
    for (int i = 0; i < ho; ++i)
      for (int j = 0; j < wo; ++j) {
        u64 acc = 0;
        for (int ch = 0; ch < s.in_channels; ++ch)
          for (int dy = 0; dy < s.kernel_h; ++dy)
            for (int dx = 0; dx < s.kernel_w; ++dx) {
              const int yy = i * s.stride + dy - s.pad, xx = j * s.stride + dx - s.pad;
              if (yy < 0 || yy >= s.height || xx < 0 || xx >= s.width) continue;
              const auto w = c.kernel[((static_cast<std::size_t>(m) * s.in_channels + ch) * s.kernel_h + dy) *
                                          s.kernel_w +
                                      dx];
              const u64 v = x[static_cast<std::size_t>((ch * s.height + yy) * s.width + xx)];
              acc = f.mod().add(acc, f.mod().mul(v, f.from_signed(w)));
            }
        y[static_cast<std::size_t>((m * ho + i) * wo + j)] = acc;
      }
  return y;
}

const Program& mnist_delphi() {
  static const Program prog = lower(
      nn::lower(nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/mnist-delphi.onnx"), lower_options()));
  return prog;
}

TEST(HybridConvForm, RecoversTheShippedModelsConvolutionsExactly) {
  const Program& prog = mnist_delphi();
  // One prime suffices: the form is the same whatever the ring (linear_test covers two).
  const mpc::Field f(prog.prime, 0);
  mpc::MaskSource masks;
  int convs = 0, matvecs = 0;
  for (const Op& op : prog.ops) {
    if (op.kind != Op::Kind::kLinear) continue;
    SCOPED_TRACE(op.name);
    const auto conv = as_convolution(op);
    const ConvForm form = conv ? *conv : as_matvec(op);
    conv ? ++convs : ++matvecs;
    const auto x = masks.uniform(f, static_cast<std::size_t>(op.linear.cols));
    EXPECT_EQ(plain_conv(f, form, x), apply_reference(f, op.linear, x, false));
  }
  // conv1 and the merged pool1 + conv2 are convolutions; the dense layers are not.
  EXPECT_EQ(convs, 2);
  EXPECT_EQ(matvecs, 2);
}

// Lowering keeps each convolution's kernel for the server's set-up: the one as_convolution
// recovers from the weights; nothing for a dense layer, nothing in the public view.
TEST(HybridConvForm, LoweringKeepsTheRecoveredKernelForTheServerOnly) {
  const Program& prog = mnist_delphi();
  const Program pub = public_view(prog);
  int kept = 0;
  for (std::size_t k = 0; k < prog.ops.size(); ++k) {
    const Op& op = prog.ops[k];
    if (op.kind != Op::Kind::kLinear) continue;
    SCOPED_TRACE(op.name);
    const auto conv = as_convolution(op);
    EXPECT_EQ(op.conv_kernel, conv ? conv->kernel : std::vector<std::int64_t>{});
    kept += !op.conv_kernel.empty();
    EXPECT_TRUE(pub.ops[k].conv_kernel.empty());
  }
  EXPECT_EQ(kept, 2);
}

TEST(HybridConvForm, MergedPoolAndConvolutionBecomeOneStridedConvolution) {
  const Program& prog = mnist_delphi();
  const Op& merged = prog.ops[2];
  ASSERT_NE(merged.name.find("AveragePool"), std::string::npos);
  const auto conv = as_convolution(merged);
  ASSERT_TRUE(conv.has_value());
  EXPECT_EQ(conv->shape.stride, 2);
  EXPECT_GT(conv->shape.kernel_h, 2);
}

// A 1x1 convolution over C x H x W given by its C x C channel matrix (row m: output m).
Op pointwise(int C, int H, int W, const std::vector<std::int32_t>& mix) {
  Op op;
  op.kind = Op::Kind::kLinear;
  op.spatial = true;
  op.in = op.out = nn::Shape{C, H, W};
  QuantLinear& q = op.linear;
  q.rows = q.cols = C * H * W;
  q.row_ptr.push_back(0);
  for (int m = 0; m < C; ++m)
    for (int p = 0; p < H * W; ++p) {
      for (int c = 0; c < C; ++c)
        if (const std::int32_t w = mix[static_cast<std::size_t>(m * C + c)]; w != 0) {
          q.col.push_back(c * H * W + p);
          q.weight.push_back(w);
        }
      q.row_ptr.push_back(static_cast<std::int64_t>(q.col.size()));
    }
  q.bias.assign(static_cast<std::size_t>(q.rows), 0);
  return op;
}

// A per-channel layer (a batch norm on a residual stream) is a depthwise convolution,
// which the preprocessing serves with only the blocks that have channels in common; a
// layer that mixes channels is not.
TEST(HybridConvForm, APerChannelLayerIsDepthwise) {
  const mpc::Field f(default_prime(), 0);
  mpc::MaskSource masks;
  std::vector<std::int32_t> diag(16, 0), mixed(16, 0);
  for (int c = 0; c < 4; ++c)
    diag[static_cast<std::size_t>(c * 4 + c)] = mixed[static_cast<std::size_t>(c * 4 + c)] = 3 + c;
  mixed[1 * 4 + 2] = -5;
  for (const auto& [mix, depthwise] : {std::pair{diag, true}, std::pair{mixed, false}}) {
    const Op op = pointwise(4, 3, 5, mix);
    const auto conv = as_convolution(op);
    ASSERT_TRUE(conv.has_value());
    EXPECT_EQ(conv->shape.depthwise, depthwise);
    EXPECT_EQ(conv->shape.kernel_h, 1);
    const auto x = masks.uniform(f, static_cast<std::size_t>(op.linear.cols));
    EXPECT_EQ(plain_conv(f, *conv, x), apply_reference(f, op.linear, x, false));
  }
}

TEST(HybridConvForm, RefusesWhatIsNotAConvolution) {
  const Program& prog = mnist_delphi();
  Op op = prog.ops[0];
  ASSERT_TRUE(as_convolution(op).has_value());
  // One weight changed at one position: no longer translation invariant.
  op.linear.weight[op.linear.weight.size() / 2] += 1;
  EXPECT_FALSE(as_convolution(op).has_value());
  // One entry dropped (a tap missing inside the image).
  op = prog.ops[0];
  op.linear.weight[op.linear.weight.size() / 2] = 0;
  EXPECT_FALSE(as_convolution(op).has_value());
  // Not spatial, or unequal strides.
  op = prog.ops[0];
  op.spatial = false;
  EXPECT_FALSE(as_convolution(op).has_value());
  op = prog.ops[0];
  op.stride_x = op.stride_y + 1;
  EXPECT_FALSE(as_convolution(op).has_value());
  // A dense layer falls back to the matrix-vector form.
  const Op& dense = prog.ops[4];
  EXPECT_FALSE(as_convolution(dense).has_value());
  EXPECT_EQ(convolution_form(dense).shape.kernel_h, 1);
  EXPECT_EQ(convolution_form(dense).shape.in_channels, dense.linear.cols);
}

}  // namespace
}  // namespace veil::hybrid
