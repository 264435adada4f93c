// Packing a lowered network into CKKS slots for latency mode (one image per set of
// ciphertexts): where every tensor element lives, and each linear stage in diagonal form.
//
// Layouts follow the multiplexed packing of Lee et al. 2022 (Low-complexity deep
// convolutional neural networks on FHE using multiplexed parallel convolutions): a
// strided convolution or pooling keeps its outputs at the slots of the input pixels they
// are centred on (row and column strides multiplied by the stride), so its generalised
// diagonals do not depend on the output position and there are only about
// (channel offsets) x (kernel taps) of them. The gaps this leaves between a channel's
// pixels are then filled with other channels (a gy x gx grid of sub-positions per pixel
// cell), so a ciphertext again holds as many values as it has slots and each plaintext
// product does useful work in every slot: after the second 2x2 pooling of a CIFAR-10
// network this cuts a convolution's diagonals two- to threefold. Where a compact layout is
// cheaper (dense layers) the packer picks it; a small dense output is accumulated in
// replicas and folded (the hybrid method of GAZELLE, Juvekar et al. 2018).
// The choice is a small dynamic programme over the stages, costed in rotations and
// plaintext multiplications. Residual networks: an Add needs every input in one layout,
// so the last linear stage of each branch may also target the layouts the other
// branches can reach (the diagonal method maps any layout to any other at no extra
// level), and the Add keeps the cheapest layout they share; a stage read by several
// stages (the block input of a residual block) is fixed to its cheapest layout first.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/he/linear_transform.hpp"
#include "veil/nn/network.hpp"

namespace veil::nn {

struct Layout {
  Shape shape;
  std::size_t slots = 0;  // slots per ciphertext block
  int channel_stride = 0, row_stride = 0, col_stride = 0;
  int channels_per_block = 0;
  // Multiplexing: channel r of a block sits in frame r % frames() (frames are
  // channel_stride apart) at sub-position r / frames() of a mux_rows x mux_cols grid
  // with strides mux_row_stride, mux_col_stride. Plain layouts have a 1 x 1 grid.
  int mux_rows = 1, mux_cols = 1;
  int mux_row_stride = 0, mux_col_stride = 0;
  // The last block (the only one of a one-block tensor) may hold `replicas` copies of its
  // channels, `replica_stride` slots apart, filling the slots its channels leave free; a
  // linear stage then reads each of those inputs from the copy nearest to the output slot
  // it feeds, so one diagonal serves many output channels. The client replicates the
  // input for free when it encodes; a linear stage writes copies of its outputs at the
  // price of more diagonals (worth it when the stage after it is the costlier one: a
  // 24-channel map in two blocks of 16 halves the next convolution's diagonals from its
  // second block).
  int replicas = 1;
  int replica_stride = 0;
  // Every block may also repeat its channels inside each pixel's cell: a pooling leaves
  // cells of (row stride / row) x col stride slots, of which the channels fill a
  // mux_rows x mux_cols corner; a copy_rows x copy_cols grid of copies, copy_row_stride
  // and copy_col_stride apart, fills the rest, so that the next convolution finds every
  // input channel at the sub-position of the output it feeds (no sub-position offsets
  // among its diagonals).
  int copy_rows = 1, copy_cols = 1;
  int copy_row_stride = 0, copy_col_stride = 0;

  static Layout compact(const Shape& shape, std::size_t slots);
  // `layout` with as many copies of its last block's channels as fit in that block
  // (itself when none fit, or when its channels are multiplexed).
  static Layout replicated(const Layout& layout);
  int blocks() const { return (shape.c + channels_per_block - 1) / channels_per_block; }
  int frames() const { return channels_per_block / (mux_rows * mux_cols); }
  // Global slot (block * slots + offset) of flat C x H x W index `index` (first copy).
  std::int64_t slot(int index) const;
  // `layout` with a grid of copies filling the cells its pixel strides leave around its
  // channels' sub-positions (itself when they fill them, or it has copies already).
  static Layout cell_copies(const Layout& layout);
  // How many copies element `index` has: replicas x copy_rows x copy_cols in the last
  // block, copy_rows x copy_cols elsewhere; copy k of element i sits at slot(i) +
  // copy_offset(k).
  int copies(int index) const {
    const int block = index / (shape.h * shape.w) / channels_per_block;
    return (block == blocks() - 1 ? replicas : 1) * copy_rows * copy_cols;
  }
  std::int64_t copy_offset(int k) const {
    const int cell = copy_rows * copy_cols;
    return static_cast<std::int64_t>(k / cell) * replica_stride +
           static_cast<std::int64_t>(k / copy_cols % copy_rows) * copy_row_stride +
           static_cast<std::int64_t>(k % copy_cols) * copy_col_stride;
  }
  bool operator==(const Layout&) const = default;
  // Whether every element (and copy) has its own slot inside its block.
  bool injective() const;
  std::string describe() const;
};

struct PackedStage {
  StageKind kind = StageKind::kLinear;
  std::string name;
  Layout in, out;
  he::LinearTransformSpec spec;  // linear stages
  int giant_step = 1;
  he::TransformCounts counts;
  std::vector<double> coefficients;  // poly stages
  int levels = 0;                    // levels this stage consumes
  std::vector<int> inputs;           // producer stages (-1: the input); empty: the one before
  bool fold = false;                 // linear stages: outputs accumulated in replicas, then folded
};

struct LayoutSearch;

// How the layout search prices a level that a layout spends (a pooling that compacts its
// channels into fewer ciphertexts with masks, say). kAdaptive: a twelfth of the cost of
// everything up to it, what one more limb adds to the stages that run above it (about a
// dozen limbs each); a level is bought where it saves more than that. kAvoid: more than
// any saving, so the depth stays the least the stages allow.
enum class LevelPricing { kAdaptive, kAvoid };

struct Packing {
  std::size_t slots = 0;
  Layout input, output;
  std::vector<PackedStage> stages;
  // Ring switching (ckks/ring_switch.hpp): the stages after this one run in the ring of
  // half the degree (slots / 2 slots per block); the stage itself writes each output as
  // two partial sums, at its slot s and s + slots / 2, which the switch adds. -1: one ring
  // throughout.
  int switch_after = -1;
  // The layout search behind a packing without a ring switch (pack_network_switches
  // starts its candidates from it); not part of the plan itself.
  std::shared_ptr<const LayoutSearch> search;
  // Levels of the deepest path to the output (the sum of the stages' along a chain).
  int depth() const;
  // The rotations the stages of one ring use (the large ring's, or the smaller one's).
  std::vector<int> rotation_steps(bool small_ring = false) const;
  he::TransformCounts totals() const;
};

// Packs every stage. With `with_values` false only positions are computed (for plans and
// cost reports); the returned diagonals then have empty value vectors.
// With `switch_after` >= 0, stage switch_after (a linear stage after which nothing reads
// an earlier stage) ends in the ring of half the degree and the stages after it run there.
// `pairs_of`: the search of an earlier packing of `net` at `slots` (Packing::search), whose
// costed (stage, layout, layout) pairs are reused; they do not depend on the pricing.
Packing pack_network(const Network& net, std::size_t slots, bool with_values = true, int switch_after = -1,
                     LevelPricing pricing = LevelPricing::kAdaptive, const LayoutSearch* pairs_of = nullptr);
// Positions only, one packing per candidate stage (-1: no switch), for the same network
// and slots as `plain` (a pack_network result without a switch), whose search (and level
// pricing) the stages before each switch reuse; a candidate that cannot be packed (not a linear stage, an
// earlier stage read after it, no layout fits) gives a packing without stages.
std::vector<Packing> pack_network_switches(const Network& net, const Packing& plain,
                                           const std::vector<int>& candidates);

// What the layout search decided, without what follows from it: the input's layout, each
// stage's output layout (and whether a linear stage folds), the ring switch. A server
// keeps it between starts (veil's plan cache) so that a restart packs each stage once
// instead of searching again: cifar10-shallow's search is 1.6 s of its set-up.
struct PackingChoice {
  std::size_t slots = 0;
  int switch_after = -1;
  Layout input;
  std::vector<Layout> outputs;  // one per stage
  std::vector<char> folds;      // one per stage (0 or 1)
  bool operator==(const PackingChoice&) const = default;
};
PackingChoice packing_choice(const Packing& packing);
// The packing `choice` describes (positions only), equal to the one the search returned
// when `net` is the network it was made for. Every layout is checked first (the slot
// count of its ring, its shape, one slot per element, polynomials and Adds keeping their
// input's layout, a ring switch the evaluators can run): a choice for another network
// throws std::invalid_argument naming the first stage that does not fit.
Packing pack_network_as(const Network& net, const PackingChoice& choice);
// Byte form (the plan cache's; the wire's layouts use the same encoding). read_* throws
// std::runtime_error on truncated or out-of-range fields.
void write_layout(ByteWriter& w, const Layout& l);
Layout read_layout(ByteReader& r, const char* what);
void write_packing_choice(ByteWriter& w, const PackingChoice& c);
PackingChoice read_packing_choice(ByteReader& r);

// Throws std::invalid_argument naming the first stage the encrypted evaluators cannot run:
// one that reads a later stage or a tensor of another size, an Add whose inputs differ in
// shape (C x H x W), a stage no later stage reads (only the last one is the output).
void check_graph(const Network& net);

// Diagonal form of one linear stage between two layouts (fold: accumulate the outputs in
// replicas spaced by the next power of two >= out.size() and fold them at the end).
he::LinearTransformSpec pack_linear(const LinearStage& stage, const Layout& in, const Layout& out, bool fold,
                                    bool with_values);

// Reads the tensor back from decoded blocks, and writes one into blocks.
std::vector<double> unpack(const Layout& layout, const std::vector<std::vector<double>>& blocks);
std::vector<std::vector<double>> pack(const Layout& layout, const std::vector<double>& tensor);

}  // namespace veil::nn
