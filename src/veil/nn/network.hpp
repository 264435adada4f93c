// The lowered network: what the merging passes produce and what every evaluator (plain
// reference, encrypted latency/throughput modes, later the hybrid protocol) consumes.
//
// A network is a graph of stages over flattened C x H x W tensors (channel-major, the
// same order as the ONNX input), in topological order: each stage names the stages it
// reads (Stage::inputs), so a residual block is an Add stage reading two earlier outputs.
// The chain, each stage reading the one before, is the common case (Network::is_chain);
// every evaluator, encrypted ones included, runs both. Linear stages carry an explicit sparse matrix, so one
// representation covers Conv (any kernel/stride/padding, groups 1 or depthwise), Gemm,
// MatMul, folded batch norm, average pooling and their merges; the packing code derives
// slot layouts and diagonals from the matrix and the stage's geometry hints.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace veil::nn {

struct Shape {
  int c = 1, h = 1, w = 1;
  int size() const { return c * h * w; }
  bool operator==(const Shape&) const = default;
  // What a decoder accepts from a file or a peer: every dimension in 1..2^16 and at most
  // 2^24 elements, far beyond any model veil plans, so size() cannot overflow.
  bool within_limits() const {
    return c >= 1 && h >= 1 && w >= 1 && c <= 65536 && h <= 65536 && w <= 65536 &&
           std::int64_t{c} * h * w <= (std::int64_t{1} << 24);
  }
};

// Compressed sparse rows: row r holds entries [row_ptr[r], row_ptr[r+1]) of col/val.
struct SparseMatrix {
  int rows = 0, cols = 0;
  std::vector<std::int64_t> row_ptr;  // rows + 1 entries
  std::vector<int> col;
  std::vector<double> val;
  std::int64_t nnz() const { return static_cast<std::int64_t>(val.size()); }
};

struct LinearStage {
  std::string name;  // ONNX node names merged into this stage, joined by '+'
  Shape in, out;
  SparseMatrix weights;      // out.size() x in.size()
  std::vector<double> bias;  // out.size() (zeros when there is none)
  // Geometry hint for packing. spatial = true when output pixel (y, x) of every channel
  // reads only input pixels near (y * stride_y, x * stride_x) (Conv, AveragePool and
  // their merges; stride = product of merged strides). false for dense layers (Gemm,
  // MatMul, anything after Flatten, GlobalAveragePool).
  bool spatial = false;
  int stride_y = 1, stride_x = 1;
  // True when every weight is exactly 1, so the stage costs rotations and additions but no
  // level: a pure sum pool (no bias; its 1/k^2 has been folded into the next linear
  // stage), or a per-channel shift (identity weights and a bias, pass (e) of passes.hpp).
  bool unit_weights = false;
};

struct PolyStage {
  std::string name;
  // Ascending coefficients c0..cd. After the merging passes the polynomial is monic
  // (cd = 1) when a linear stage follows: its leading coefficient lives in that stage.
  std::vector<double> coefficients;
  double input_range = 0;  // largest |x| measured on the training and test sets
  double fit_range = 0;    // interval the polynomial was fitted on
  int degree() const { return static_cast<int>(coefficients.size()) - 1; }
};

// Element-wise sum of its inputs, all of one size (a residual join, He et al. 2016).
struct AddStage {
  std::string name;
  Shape shape;
};

// std::visit with one lambda per alternative: std::visit(Overloaded{f, g, h}, stage.op).
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// What a stage computes; the index order is StageKind's.
using StageOp = std::variant<LinearStage, PolyStage, AddStage>;
enum class StageKind { kLinear, kPoly, kAdd };

struct Stage {
  StageOp op;
  // Producer stage indices, each smaller than this stage's, -1 = the network input.
  // Empty means the previous stage (the network input for stage 0), so a chain built by
  // hand needs no edges; Add stages list theirs.
  std::vector<int> inputs;

  Stage() = default;
  Stage(StageOp o, std::vector<int> in = {}) : op(std::move(o)), inputs(std::move(in)) {}  // NOLINT

  const std::string& name() const;
  StageKind kind() const { return static_cast<StageKind>(op.index()); }
  template <class T>
  bool is() const {
    return std::holds_alternative<T>(op);
  }
  // Checked access: throws std::bad_variant_access when the stage is of another kind
  // (use std::get_if on `op` where the kind is not known).
  const LinearStage& linear() const { return std::get<LinearStage>(op); }
  LinearStage& linear() { return std::get<LinearStage>(op); }
  const PolyStage& poly() const { return std::get<PolyStage>(op); }
  PolyStage& poly() { return std::get<PolyStage>(op); }
  const AddStage& add() const { return std::get<AddStage>(op); }
  AddStage& add() { return std::get<AddStage>(op); }
};

// The network output is its last stage.

struct Network {
  std::string name;     // metadata veil.model, else the file stem
  std::string dataset;  // veil.dataset
  Shape input;
  std::vector<double> mean, std;  // per input channel: x = (pixel / 255 - mean) / std
  std::vector<std::string> classes;
  std::vector<Stage> stages;
  int num_outputs() const;  // size of the last stage's output
  // Values stage k produces (the input's size for k = -1).
  int output_size(int k) const;
  // Stage k's producers with the chain default resolved (-1 = the network input).
  std::vector<int> inputs_of(int k) const;
  // True when every stage reads exactly the stage before it (no joins, no branches).
  bool is_chain() const;
  // Frees every linear stage's weights (an all-zero matrix of the same size is left),
  // keeping the structure (names, shapes, inputs, biases, polynomials): what a server
  // keeps once the weights live encoded in its evaluator. The sparse matrices are hundreds
  // of MB for a CIFAR-10 model (cifar10-shallow: 31.8 million entries, 12 bytes each); a
  // server moves them into its nn::EncryptedNetwork (take/put below), which frees each
  // stage's once that stage is encoded.
  void drop_linear_weights();
  // The same for stage k alone (a linear stage; others are left as they are).
  void drop_linear_weights(std::size_t k);
  // Moves every linear stage's weights out (one matrix per linear stage, in stage order),
  // leaving what drop_linear_weights leaves, and back in: a copy of the structure alone
  // then costs no copy of the weights.
  std::vector<SparseMatrix> take_linear_weights();
  void put_linear_weights(std::vector<SparseMatrix> weights);
};

}  // namespace veil::nn
