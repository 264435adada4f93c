// `veil plan`: what the merging passes did and the CKKS plan, without encrypting anything.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "veil/cli/commands.hpp"
#include "veil/common/error.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/passes.hpp"

namespace veil::cli {

std::vector<std::string> mode_names() {
  std::vector<std::string> names;
  for (const nn::PackingMode* m : nn::packing_modes()) names.emplace_back(m->name());
  names.emplace_back("hybrid");
  return names;
}

void add_model_options(CLI::App& cmd, ModelOptions& o, std::string& mode) {
  cmd.add_option("--model,-m", o.path, "ONNX model (see docs/model-format.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd.add_option("--approximate", o.approximate,
                 "replace a standard activation by a fitted polynomial, e.g. relu:deg4:range8 (repeatable)");
  cmd.add_option("--mode", mode,
                 "latency (one image, packed slots), throughput (one image per slot), or hybrid (HE\n"
                 "preprocessing + secret-shared online stage; the model stays hidden from the client)")
      ->check(CLI::IsMember(mode_names()));
  cmd.add_option("--calibration", o.calibration,
                 "hybrid mode: images that choose the fixed-point scales (an IDX or CIFAR-10 file or a\n"
                 "data-set folder; the first 64 records). Default: the model's data set, installed")
      ->check(CLI::ExistingPath);
  cmd.add_option("--share-ring", o.share_ring,
                 "hybrid mode: the ring the shares live in. one: Z_p (61 bits), the fastest online stage;\n"
                 "two: Z_(p0 p1) (92 bits), more precise fixed point (closer to the plaintext logits)\n"
                 "at ~1.5x the online time and ~1.8x the preprocessing; auto (default): one prime when\n"
                 "its predicted top-1 agreement with the plaintext model on the calibration images is\n"
                 ">= 99.9%, else two (two without calibration images)")
      ->check(CLI::IsMember({"auto", "one", "two"}));
  cmd.add_option("--log-n", o.plan.log_n, "force the ring degree 2^n (default: smallest secure one)")
      ->check(CLI::Range(12, 17));
  cmd.add_option("--ring-switch", o.plan.ring_switch,
                 "latency mode: run the last layers in the ring of half the degree when that is\n"
                 "predicted at least 5% faster (default true; cifar10-shallow: 10-15% faster, a\n"
                 "quarter less plaintext memory; false keeps one ring)");
  cmd.add_option("--ring-switch-after", o.plan.ring_switch_after,
                 "latency mode: switch rings after stage K (numbered as `veil plan` lists them),\n"
                 "whatever the prediction; implies --ring-switch")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--scale-bits", o.plan.target_scale_bits,
                 "target CKKS scale in bits (default 30 latency, 31 throughput)")
      ->check(CLI::Range(20, 58));
}

Model open_model(ModelOptions& o, const std::string& mode) {
  o.plan.mode = nn::parse_mode(mode);
  if (o.plan.ring_switch_after > 0) o.plan.ring_switch = true;
  return load_model(o);
}

namespace {

void print_costs(const Model& m) {
  // Only this report needs the network without the passes.
  const nn::Network unmerged = nn::lower(m.graph, nn::LowerOptions::none());
  const nn::CostReport before = nn::cost(unmerged), after = nn::cost(m.network);
  const auto slots = m.plan.slots;
  // Rotations come from the latency-mode packing of each form of the network.
  auto rotations = [&](const nn::Network& net) {
    try {
      return nn::pack_network(net, slots, false).totals().rotations();
    } catch (const std::exception&) {
      return -1;
    }
  };
  std::printf(
      "merging passes (BN folding, pool scale and polynomial leading coefficient into the next layer,\n"
      "consecutive linear layers merged):\n");
  std::printf("  %-26s %12s %12s\n", "", "before", "after");
  std::printf("  %-26s %12d %12d\n", "stages", before.num_stages(), after.num_stages());
  std::printf("  %-26s %12d %12d\n", "multiplicative depth", before.depth, after.depth);
  std::printf("  %-26s %12lld %12lld\n", "ct x pt multiplications",
              static_cast<long long>(before.plaintext_mults), static_cast<long long>(after.plaintext_mults));
  std::printf("  %-26s %12lld %12lld\n", "ct x ct multiplications",
              static_cast<long long>(before.ciphertext_mults),
              static_cast<long long>(after.ciphertext_mults));
  std::printf("  %-26s %12lld %12lld\n", "additions", static_cast<long long>(before.additions),
              static_cast<long long>(after.additions));
  std::printf("  %-26s %12d %12d\n", "rotations (latency mode)", rotations(unmerged), rotations(m.network));
}

// How deep a network the larger rings hold without bootstrapping: with this plan's scale,
// and the deepest chain at any scale the planner accepts (smaller primes, more of them,
// until too few primes = 1 mod 2N exist near the size).
void print_depth_budget(const Model& m, const nn::PlanOptions& options) {
  const int scale_bits = static_cast<int>(std::lround(std::log2(m.plan.params.scale)));
  std::cout << "  depth budget, 128-bit, no bootstrapping (a layer = linear + degree-2 activation = 2 "
               "levels):\n";
  for (int log_n : {15, 16}) {
    const int levels = nn::max_depth(log_n, scale_bits, options);
    int best = levels, best_bits = scale_bits;
    for (int bits = options.min_scale_bits; bits < scale_bits; ++bits)
      if (const int d = nn::max_depth(log_n, bits, options); d > best) best = d, best_bits = bits;
    std::cout << "    N = 2^" << log_n << ": " << levels << " levels at scale 2^" << scale_bits << " ("
              << levels / 2 << " layers)";
    if (best > levels) std::cout << ", " << best << " at 2^" << best_bits << " (" << best / 2 << " layers)";
    std::cout << "\n";
  }
  std::cout << "    this model needs " << m.plan.depth << " levels\n";
}

}  // namespace

void register_plan(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plan", "show the merged network, its cost before/after merging, and the mode's plan (CKKS or hybrid)");
  auto o = std::make_shared<ModelOptions>();
  auto mode = std::make_shared<std::string>("latency");
  add_model_options(*cmd, *o, *mode);
  cmd->callback([o, mode] {
    if (*mode == "hybrid") return print_hybrid_plan(load_hybrid_model(*o, true));
    Model m = open_model(*o, *mode);
    std::cout << "model " << m.network.name << " (" << m.network.dataset << ", input " << m.network.input.c
              << "x" << m.network.input.h << "x" << m.network.input.w << ")\n"
              << nn::describe(m.network) << "\n";
    print_costs(m);
    std::cout << "\nplan"
              << (m.plan_kept ? " (kept from an earlier run: --plan-cache off searches again)" : "") << "\n"
              << m.plan.describe();
    print_depth_budget(m, o->plan);
    if (m.plan.packing_mode().has_layouts()) {
      std::cout << "  layouts:\n    input  " << m.plan.packing.input.describe() << "\n";
      for (const auto& s : m.plan.packing.stages)
        if (s.kind == nn::StageKind::kLinear)
          std::cout << "    " << s.name.substr(0, 40) << " -> " << s.out.describe()
                    << (s.spec.fold_steps.empty() ? "" : " (folded)")
                    << (s.spec.unit ? " (sum, no level)" : "") << "\n";
    }
  });
}

}  // namespace veil::cli
