#include "veil/nn/he/public_plan.hpp"

#include <cmath>

#include "veil/ckks/serialize.hpp"
#include "veil/common/error.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/rlwe/ring_switch.hpp"

namespace veil::nn {

std::size_t input_ciphertexts(const Network& net, const Plan& plan) {
  return plan.packing_mode().input_ciphertexts(plan, net.input);
}

std::size_t output_ciphertexts(const Network& net, const Plan& plan) {
  return plan.packing_mode().output_ciphertexts(plan, net.num_outputs());
}

PublicPlan make_public_plan(const Network& net, const Plan& plan) {
  PublicPlan s;
  s.model = net.name.substr(0, kMaxPublicName);
  s.dataset = net.dataset.substr(0, kMaxPublicName);
  s.input = net.input;
  s.mean = net.mean;
  s.std = net.std;
  for (const auto& c : net.classes) s.classes.push_back(c.substr(0, kMaxPublicName));
  s.mode = plan.mode;
  s.parameters = ckks::save_parameters(plan.params);
  s.slots = plan.slots;
  if (plan.packing_mode().has_layouts()) {
    s.input_layout = plan.packing.input;
    s.output_layout = plan.packing.output;
  } else {  // unused without layouts (throughput mode: one element per ciphertext)
    s.input_layout = Layout::compact(net.input, plan.slots);
    s.output_layout = Layout::compact(Shape{net.num_outputs(), 1, 1}, plan.slots);
  }
  s.rotation_steps = plan.rotation_steps;
  s.rotation_key_levels = plan.rotation_key_levels;
  s.conjugation_key_level = plan.conjugation_key_level;
  s.max_batch = static_cast<std::uint32_t>(plan.packing_mode().batch_size(plan));
  s.input_ciphertexts = static_cast<std::uint32_t>(input_ciphertexts(net, plan));
  s.output_ciphertexts = static_cast<std::uint32_t>(output_ciphertexts(net, plan));
  if (plan.small_params) {
    s.small_parameters = ckks::save_parameters(*plan.small_params);
    s.switch_after = plan.switch_after();
    s.small_rotation_steps = plan.small_rotation_steps;
    s.small_rotation_key_levels = plan.small_rotation_key_levels;
    s.small_conjugation_key_level = plan.small_conjugation_key_level;
  }
  return s;
}

namespace {

// Rotation steps in [1, slots) with key levels in [0, top], as many of each.
void check_rotations(const std::vector<int>& steps, const std::vector<int>& levels, std::size_t slots,
                     int top, const char* ring) {
  VEIL_CHECK_IO(steps.size() == levels.size(), ring << "rotation steps and levels differ in count");
  for (std::size_t i = 0; i < steps.size(); ++i) {
    VEIL_CHECK_IO(steps[i] > 0 && static_cast<std::size_t>(steps[i]) < slots,
                  ring << "rotation step " << steps[i] << " out of range");
    VEIL_CHECK_IO(levels[i] >= 0 && levels[i] <= top,
                  ring << "rotation key level " << levels[i] << " out of range");
  }
}

// Every element of the layout's shape, and each of its copies, has a slot of its own
// inside its blocks (pack writes copy r of element i at slot(i) + r * replica_stride).
void check_layout(const Layout& l, std::size_t slots, std::size_t blocks, const char* what) {
  VEIL_CHECK_IO(l.slots == slots, what << " layout has " << l.slots << " slots, the plan " << slots);
  VEIL_CHECK_IO(static_cast<std::size_t>(l.blocks()) == blocks,
                what << " layout spans " << l.blocks() << " ciphertexts, the server announced " << blocks);
  VEIL_CHECK_IO(l.injective(),
                what << " layout places an element outside its ciphertexts or two in one slot");
}

}  // namespace

PublicModel public_model(const PublicPlan& info) {
  PublicModel m;
  auto& net = m.network;
  net.name = info.model;
  net.dataset = info.dataset;
  net.input = info.input;
  net.mean = info.mean;
  net.std = info.std;
  net.classes = info.classes;
  const auto c = static_cast<std::size_t>(info.input.c);
  VEIL_CHECK_IO((net.mean.empty() || net.mean.size() == c) && (net.std.empty() || net.std.size() == c),
                "normalisation has " << net.mean.size() << " means and " << net.std.size()
                                     << " deviations for " << c << " channels");
  for (double s : net.std) VEIL_CHECK_IO(s != 0, "zero standard deviation");

  auto& plan = m.plan;
  plan.mode = info.mode;
  // The client refuses parameters below 128-bit security, whatever the server says.
  plan.params = ckks::load_parameters(info.parameters, /*allow_insecure=*/false);
  const std::size_t n = plan.params.n();
  VEIL_CHECK_IO(info.slots <= n / 2 && (info.slots & (info.slots - 1)) == 0,
                "slot count " << info.slots << " is not a power of two up to N/2 = " << n / 2);
  plan.slots = info.slots;
  plan.packing.slots = info.slots;
  plan.rotation_steps = info.rotation_steps;
  plan.rotation_key_levels = info.rotation_key_levels;
  check_rotations(plan.rotation_steps, plan.rotation_key_levels, info.slots, plan.params.max_level(), "");
  VEIL_CHECK_IO(info.conjugation_key_level >= -1 && info.conjugation_key_level <= plan.params.max_level(),
                "conjugation key level " << info.conjugation_key_level << " out of range");
  plan.conjugation_key_level = info.conjugation_key_level;
  // A ring switch: the smaller ring must be secure on its own and a prefix of the chain at
  // half the degree (ring_switch_parameters checks the shape).
  std::size_t result_slots = info.slots;
  if (!info.small_parameters.empty()) {
    VEIL_CHECK_IO(plan.packing_mode().has_layouts(), "a ring switch in a mode without layouts");
    plan.small_params = ckks::load_parameters(info.small_parameters, /*allow_insecure=*/false);
    rlwe::ring_switch_parameters(plan.params, *plan.small_params);
    VEIL_CHECK_IO(info.switch_after >= 0, "a smaller ring without a stage to switch after");
    plan.packing.switch_after = info.switch_after;
    result_slots = info.slots / 2;
    plan.small_rotation_steps = info.small_rotation_steps;
    plan.small_rotation_key_levels = info.small_rotation_key_levels;
    check_rotations(plan.small_rotation_steps, plan.small_rotation_key_levels, result_slots,
                    plan.small_params->max_level(), "the smaller ring's ");
    VEIL_CHECK_IO(
        info.small_conjugation_key_level >= -1 &&
            info.small_conjugation_key_level <= plan.small_params->max_level(),
        "the smaller ring's conjugation key level " << info.small_conjugation_key_level << " out of range");
    plan.small_conjugation_key_level = info.small_conjugation_key_level;
  } else {
    VEIL_CHECK_IO(info.switch_after == -1 && info.small_rotation_steps.empty() &&
                      info.small_rotation_key_levels.empty() && info.small_conjugation_key_level == -1,
                  "a ring switch announced without the smaller ring's parameters");
  }
  std::size_t outputs = 0;
  if (plan.packing_mode().has_layouts()) {
    VEIL_CHECK_IO(info.max_batch == 1, "latency mode takes one image per request");
    VEIL_CHECK_IO(info.input_layout.shape == info.input, "input layout does not match the input shape");
    check_layout(info.input_layout, info.slots, info.input_ciphertexts, "input");
    check_layout(info.output_layout, result_slots, info.output_ciphertexts, "output");
    plan.packing.input = info.input_layout;
    plan.packing.output = info.output_layout;
    outputs = static_cast<std::size_t>(info.output_layout.shape.size());
  } else {
    VEIL_CHECK_IO(info.input_ciphertexts == static_cast<std::uint32_t>(info.input.size()),
                  "throughput mode takes one ciphertext per input element");
    VEIL_CHECK_IO(info.max_batch <= info.slots, "batch larger than the slot count");
    outputs = info.output_ciphertexts;
  }
  VEIL_CHECK_IO(net.classes.empty() || net.classes.size() == outputs,
                net.classes.size() << " class names for " << outputs << " outputs");
  m.context = ckks::CkksContext::create(plan.params);
  m.result_context = result_context(plan, m.context);
  return m;
}

}  // namespace veil::nn
