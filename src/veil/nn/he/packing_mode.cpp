#include "veil/nn/he/packing_mode.hpp"

#include "veil/common/error.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/rlwe/key_switch.hpp"

namespace veil::nn {

namespace {

class LatencyMode final : public PackingMode {
 public:
  Mode id() const override { return Mode::kLatency; }
  const char* name() const override { return "latency"; }
  const char* unit() const override { return "image"; }
  const char* slots_note() const override { return ""; }
  // Primes below 2^31, whose diagonal products run in 64-bit integer lanes (he/mac.hpp):
  // cifar10-shallow 3.3-3.6 -> 2.7-2.8 s an image on AVX2 against 2^33, 200 of 200
  // predictions as the plaintext model's, logit errors up to 4e-3 (docs/benchmarks.md).
  int default_scale_bits() const override { return 30; }
  // Deep networks (cifar10-resnet20: no bits predicted at either) keep 2^33, where
  // `veil eval` measured them (a logit error of 2.5e-2 over 200 images).
  int precise_scale_bits() const override { return 33; }
  std::size_t batch_size(const Plan&) const override { return 1; }
  bool has_layouts() const override { return true; }
  bool weighted_sums() const override { return false; }

  int pack(const Network& net, std::size_t slots, int, Packing& packing,
           LevelPricing pricing) const override {
    const std::shared_ptr<const LayoutSearch> earlier = packing.slots == slots ? packing.search : nullptr;
    packing = pack_network(net, slots, /*with_values=*/false, -1, pricing, earlier.get());
    return packing.depth();
  }
  int stage_ciphertexts(const Plan& plan, std::size_t k, int) const override {
    return plan.packing.stages[k].in.blocks();
  }
  LinearCost linear_cost(const Plan& plan, const Network&, std::size_t k) const override {
    const PackedStage& ps = plan.packing.stages[k];
    LinearCost c;
    c.counts = ps.counts;
    c.rotation_steps = he::rotation_steps(ps.spec, ps.giant_step);
    c.keyswitches = c.counts.giant_rotations + c.counts.fold_rotations +
                    rlwe::kHoistedRotationCost * c.counts.baby_rotations;
    c.macs = c.counts.plaintext_mults;
    return c;
  }
  bool weighted(const Plan& plan, const Network&, std::size_t k) const override {
    return !plan.packing.stages[k].spec.unit;
  }
  std::size_t input_ciphertexts(const Plan& plan, const Shape&) const override {
    return plan.packing.input.blocks();
  }
  std::size_t output_ciphertexts(const Plan& plan, int) const override {
    return plan.packing.output.blocks();
  }
  std::optional<std::size_t> result_ciphertexts(const Plan& plan) const override {
    return static_cast<std::size_t>(plan.packing.output.blocks());
  }

  std::vector<std::vector<double>> pack_inputs(
      const Plan& plan, const std::vector<std::vector<double>>& images) const override {
    const int size = plan.packing.input.shape.size();
    VEIL_REQUIRE(images.size() == 1, "latency mode encrypts one image at a time, got " << images.size());
    VEIL_REQUIRE(static_cast<int>(images[0].size()) == size,
                 "image has " << images[0].size() << " values, the model expects " << size);
    return nn::pack(plan.packing.input, images[0]);
  }
  std::vector<std::vector<double>> unpack_outputs(const Plan& plan,
                                                  const std::vector<std::vector<double>>& decoded,
                                                  std::size_t) const override {
    return {unpack(plan.packing.output, decoded)};
  }
  std::vector<double> unpack_stage(const Plan& plan, std::size_t k,
                                   const std::vector<std::vector<double>>& decoded,
                                   std::size_t) const override {
    return unpack(plan.packing.stages[k].out, decoded);
  }
};

class ThroughputMode final : public PackingMode {
 public:
  Mode id() const override { return Mode::kThroughput; }
  const char* name() const override { return "throughput"; }
  const char* unit() const override { return "batch"; }
  const char* slots_note() const override { return " (images per batch)"; }
  int default_scale_bits() const override { return 31; }
  std::size_t batch_size(const Plan& plan) const override { return plan.slots; }
  bool has_layouts() const override { return false; }
  bool weighted_sums() const override { return true; }

  int pack(const Network&, std::size_t, int stage_depth, Packing&, LevelPricing) const override {
    return stage_depth;
  }
  int stage_ciphertexts(const Plan&, std::size_t, int elements) const override { return elements; }
  LinearCost linear_cost(const Plan&, const Network& net, std::size_t k) const override {
    const LinearStage& st = net.stages[k].linear();
    LinearCost c;
    c.counts.plaintext_mults = st.unit_weights ? 0 : st.weights.nnz();
    c.counts.levels = st.unit_weights ? 0 : 1;
    c.macs = st.weights.nnz();
    return c;
  }
  bool weighted(const Plan&, const Network& net, std::size_t k) const override {
    return !net.stages[k].linear().unit_weights;
  }
  std::size_t input_ciphertexts(const Plan&, const Shape& input) const override {
    return static_cast<std::size_t>(input.size());
  }
  std::size_t output_ciphertexts(const Plan&, int outputs) const override {
    return static_cast<std::size_t>(outputs);
  }
  std::optional<std::size_t> result_ciphertexts(const Plan&) const override { return std::nullopt; }

  std::vector<std::vector<double>> pack_inputs(
      const Plan& plan, const std::vector<std::vector<double>>& images) const override {
    VEIL_REQUIRE(!images.empty() && images.size() <= plan.slots,
                 "throughput mode takes 1 to " << plan.slots << " images per batch, got " << images.size());
    const std::size_t elems = images[0].size();
    for (const auto& im : images) VEIL_REQUIRE(im.size() == elems, "images in a batch differ in size");
    std::vector<std::vector<double>> slots(elems, std::vector<double>(images.size()));
    for (std::size_t b = 0; b < images.size(); ++b)
      for (std::size_t e = 0; e < elems; ++e) slots[e][b] = images[b][e];
    return slots;
  }
  std::vector<std::vector<double>> unpack_outputs(const Plan& plan,
                                                  const std::vector<std::vector<double>>& decoded,
                                                  std::size_t images) const override {
    VEIL_REQUIRE(images <= plan.slots, "more images than slots");
    std::vector<std::vector<double>> logits(images, std::vector<double>(decoded.size()));
    for (std::size_t o = 0; o < decoded.size(); ++o)
      for (std::size_t b = 0; b < images; ++b) logits[b][o] = decoded[o][b];
    return logits;
  }
  std::vector<double> unpack_stage(const Plan&, std::size_t, const std::vector<std::vector<double>>& decoded,
                                   std::size_t image) const override {
    std::vector<double> values(decoded.size());
    for (std::size_t e = 0; e < decoded.size(); ++e) values[e] = decoded[e][image];
    return values;
  }
};

}  // namespace

const std::vector<const PackingMode*>& packing_modes() {
  static const LatencyMode latency;
  static const ThroughputMode throughput;
  static const std::vector<const PackingMode*> modes = {&latency, &throughput};
  VEIL_REQUIRE(modes.size() == kPackingModeCount, "internal: kPackingModeCount is not the number of modes");
  return modes;
}

const PackingMode& packing_mode(Mode mode) {
  const auto& modes = packing_modes();
  const auto i = static_cast<std::size_t>(mode);
  VEIL_REQUIRE(i < modes.size(), "unknown packing mode " << i);
  return *modes[i];
}

}  // namespace veil::nn
