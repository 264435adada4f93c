// Recovering the convolution behind a quantised linear stage. The lowered network keeps
// every linear stage as a sparse matrix (merged pools, folded batch norm and all), which
// suits the online phase; the preprocessing wants the convolution itself, because under
// coefficient encoding one convolution costs a few ciphertext products (bfv/conv_layout,
// Cheetah) where the same matrix as a dense matrix-vector product would cost rows x cols / N.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "veil/bfv/conv_layout.hpp"
#include "veil/hybrid/program.hpp"

namespace veil::hybrid {

struct ConvForm {
  bfv::ConvShape shape;
  std::vector<std::int64_t> kernel;  // (M, C, kh, kw) row-major
};

// The convolution (one stride for both axes, the same zero padding on every side) whose
// matrix is exactly the op's weights, or nullopt when the weights are not one (a dense
// layer, asymmetric padding, unequal strides, weights that vary across positions). A
// kernel that is zero off its diagonal (M = C > 1, output channel m reading channel m only)
// is marked depthwise.
std::optional<ConvForm> as_convolution(const Op& op);

// The op's weights as a dense matrix-vector product (M = rows, C = cols, 1x1 kernel).
ConvForm as_matvec(const Op& op);

// as_convolution when it applies, else as_matvec.
ConvForm convolution_form(const Op& op);

}  // namespace veil::hybrid
