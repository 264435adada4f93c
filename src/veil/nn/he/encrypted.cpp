#include "veil/nn/he/encrypted.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>

#include "veil/common/error.hpp"
#include "veil/common/memory.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/he/mac.hpp"
#include "veil/he/polynomial.hpp"
#include "veil/he/weighted_sum.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::nn {

using ckks::Ciphertext;
using math::u64;

std::size_t default_plaintext_cache_bytes() {
  // Half the machine's memory, and no more than a third of what is available now: each
  // diagonal left out costs an NTT per limb on every image, but the working set (up to
  // 4 GiB reserved) and, in one process, the keys need the rest (`veil infer` of
  // cifar10-resnet20 holds 2.9 GiB of keys as sent in two expanded copies, about 14 GB:
  // with half the machine it ran out of memory, with half of what was available it peaked
  // at 21.4 of 24 GB).
  return memory_budget(1.0 / 3);
}

namespace {

// One key per step, generated at the highest level it is used at (smaller keys), and the
// conjugation key at its level (none when -1).
rlwe::GaloisKeys rotation_keys(const rlwe::KeyGenerator& keygen, const std::vector<int>& steps,
                               const std::vector<int>& levels, int conjugation_level) {
  std::map<int, std::vector<int>> by_level;
  for (std::size_t i = 0; i < steps.size(); ++i) by_level[levels[i]].push_back(steps[i]);
  rlwe::GaloisKeys out;
  for (const auto& [level, at_level] : by_level) {
    rlwe::GaloisKeys gk = keygen.create_galois_keys(at_level, false, level);
    for (auto& [g, k] : gk.keys) out.keys.emplace(g, std::move(k));
  }
  if (conjugation_level >= 0)
    for (auto& [g, k] : keygen.create_galois_keys({}, true, conjugation_level).keys)
      out.keys.emplace(g, std::move(k));
  return out;
}

}  // namespace

EvaluationKeys make_evaluation_keys(const Plan& plan, const rlwe::KeyGenerator& keygen) {
  EvaluationKeys keys;
  keys.relin = keygen.create_relin_keys();
  keys.galois =
      rotation_keys(keygen, plan.rotation_steps, plan.rotation_key_levels, plan.conjugation_key_level);
  if (plan.small_params) {
    const auto small = ckks::CkksContext::create(*plan.small_params);
    const rlwe::ContextPtr& big = keygen.context();
    const rlwe::KeyGenerator small_gen(small, rlwe::derive_subring_secret(*big, keygen.secret_key(), *small));
    keys.small_relin = small_gen.create_relin_keys();
    keys.small_galois = rotation_keys(small_gen, plan.small_rotation_steps, plan.small_rotation_key_levels,
                                      plan.small_conjugation_key_level);
    const auto switching =
        rlwe::Context::create(rlwe::ring_switch_parameters(plan.params, *plan.small_params));
    keys.ring_switch =
        rlwe::create_ring_switch_key(*big, keygen.secret_key(), switching, *small, small_gen.secret_key());
  }
  return keys;
}

namespace {

struct SmallRing {
  ckks::ContextPtr small;
  rlwe::ContextPtr switching;
};
SmallRing small_ring(const Plan& plan) {
  return {ckks::CkksContext::create(*plan.small_params),
          rlwe::Context::create(rlwe::ring_switch_parameters(plan.params, *plan.small_params))};
}

constexpr std::uint64_t kMaxKeyBlob = std::uint64_t{1} << 40;

}  // namespace

Bytes save_small_ring_keys(const Plan& plan, const EvaluationKeys& keys, bool compress) {
  if (!plan.small_params) return {};
  VEIL_REQUIRE(keys.ring_switch, "the plan switches rings but the keys hold no ring-switching key");
  const SmallRing r = small_ring(plan);
  ByteWriter w;
  for (const Bytes& b : {rlwe::save_relin_keys(*r.small, keys.small_relin, compress),
                         rlwe::save_galois_keys(*r.small, keys.small_galois, compress),
                         rlwe::save_relin_keys(*r.switching, rlwe::RelinKeys{*keys.ring_switch}, compress)}) {
    w.u64(b.size());
    w.bytes(b);
  }
  return w.take();
}

SmallRingKeyParts split_small_ring_keys(std::span<const std::uint8_t> blob) {
  if (blob.empty()) return {};
  ByteReader in(blob);
  std::span<const std::uint8_t> parts[3];
  for (int i = 0; i < 3; ++i) {
    const std::uint64_t n = in.u64();
    VEIL_CHECK_IO(n <= kMaxKeyBlob, "smaller-ring key part " << i << " claims " << n << " bytes");
    parts[i] = in.view(static_cast<std::size_t>(n));
  }
  VEIL_CHECK_IO(in.remaining() == 0, "trailing bytes after the smaller ring's keys");
  return {parts[0], parts[1], parts[2]};
}

namespace {

// load_small_ring_switching_keys with the smaller ring's contexts already made.
void load_switching_keys(const Plan& plan, const SmallRing& r, std::span<const std::uint8_t> relin,
                         std::span<const std::uint8_t> ring_switch, EvaluationKeys& keys) {
  VEIL_CHECK_IO(!relin.empty() && !ring_switch.empty(), "this plan switches to a smaller ring after stage "
                                                            << plan.switch_after() + 1
                                                            << " and needs its keys; none were sent "
                                                            << "(make the keys with this model's plan)");
  keys.small_relin = rlwe::load_relin_keys(*r.small, relin);
  keys.ring_switch = rlwe::load_relin_keys(*r.switching, ring_switch).key;
  VEIL_CHECK_IO(keys.small_relin.key.level >= plan.small_params->max_level(),
                "the smaller ring's relinearisation key covers levels up to "
                    << keys.small_relin.key.level << ", the plan needs " << plan.small_params->max_level());
  VEIL_CHECK_IO(keys.ring_switch->level >= plan.small_params->max_level(),
                "the ring-switching key covers levels up to "
                    << keys.ring_switch->level << ", the plan needs " << plan.small_params->max_level());
}

}  // namespace

void load_small_ring_switching_keys(const Plan& plan, std::span<const std::uint8_t> relin,
                                    std::span<const std::uint8_t> ring_switch, EvaluationKeys& keys) {
  if (!plan.small_params) {
    VEIL_CHECK_IO(relin.empty() && ring_switch.empty(),
                  "keys for a smaller ring sent, but this plan runs in one ring");
    return;
  }
  load_switching_keys(plan, small_ring(plan), relin, ring_switch, keys);
}

void load_small_ring_keys(const Plan& plan, std::span<const std::uint8_t> blob, EvaluationKeys& keys) {
  VEIL_CHECK_IO(plan.small_params || blob.empty(),
                "keys for a smaller ring sent, but this plan runs in one ring");
  if (!plan.small_params) return;
  const SmallRingKeyParts parts = split_small_ring_keys(blob);
  const SmallRing r = small_ring(plan);  // once for all three keys
  load_switching_keys(plan, r, parts.relin, parts.ring_switch, keys);
  keys.small_galois = rlwe::load_galois_keys(*r.small, parts.galois);
  // Exactly the plan's rotations (and conjugation): extra keys would only cost server memory.
  const bool conjugate = plan.small_conjugation_key_level >= 0;
  VEIL_CHECK_IO(keys.small_galois.keys.size() == plan.small_rotation_steps.size() + (conjugate ? 1 : 0),
                "the smaller ring's keys hold " << keys.small_galois.keys.size()
                                                << " Galois keys, the plan uses "
                                                << plan.small_rotation_steps.size() << " rotations"
                                                << (conjugate ? " and the conjugation" : ""));
  if (conjugate) {
    const auto it = keys.small_galois.keys.find(r.small->conjugation_element());
    VEIL_CHECK_IO(it != keys.small_galois.keys.end() && it->second.level >= plan.small_conjugation_key_level,
                  "the smaller ring's keys lack the conjugation key at level "
                      << plan.small_conjugation_key_level << " the plan needs");
  }
  for (std::size_t i = 0; i < plan.small_rotation_steps.size(); ++i) {
    const auto it = keys.small_galois.keys.find(r.small->galois_element(plan.small_rotation_steps[i]));
    VEIL_CHECK_IO(it != keys.small_galois.keys.end(), "the smaller ring's keys lack the rotation by "
                                                          << plan.small_rotation_steps[i]
                                                          << " the plan needs");
    VEIL_CHECK_IO(it->second.level >= plan.small_rotation_key_levels[i],
                  "the smaller ring's rotation key for step "
                      << plan.small_rotation_steps[i] << " covers levels up to " << it->second.level
                      << ", the plan needs " << plan.small_rotation_key_levels[i]);
  }
}

std::uint64_t EvaluationKeys::memory_bytes() const {
  std::uint64_t b = relin.key.bytes() + small_relin.key.bytes() + (ring_switch ? ring_switch->bytes() : 0);
  for (const auto* g : {&galois, &small_galois})
    for (const auto& [elt, key] : g->keys) b += key.bytes();
  return b;
}

std::uint64_t evaluation_key_bytes(const Plan& plan, const ckks::CkksContext& ctx,
                                   const EvaluationKeys& keys) {
  std::uint64_t b = rlwe::saved_size(ctx, keys.relin) + rlwe::saved_size(ctx, keys.galois);
  if (plan.small_params && keys.ring_switch) {
    const SmallRing r = small_ring(plan);
    b += rlwe::saved_size(*r.small, keys.small_relin) + rlwe::saved_size(*r.small, keys.small_galois) +
         rlwe::saved_size(*r.switching, rlwe::RelinKeys{*keys.ring_switch}) + 3 * sizeof(std::uint64_t);
  }
  return b;
}

std::vector<std::vector<double>> decrypt_outputs(const Plan& plan, const ResultRing& ring,
                                                 const std::vector<Ciphertext>& outputs, std::size_t images) {
  return decrypt_outputs(plan, *ring.encoder, *ring.decryptor, outputs, images);
}

ckks::ContextPtr result_context(const Plan& plan, const ckks::ContextPtr& ctx) {
  return plan.small_params ? ckks::CkksContext::create(*plan.small_params) : ctx;
}

ResultRing::ResultRing(const Plan& plan, const ckks::ContextPtr& ctx, const rlwe::SecretKey& sk)
    : context(result_context(plan, ctx)) {
  if (!plan.small_params) {
    encoder = std::make_unique<ckks::CkksEncoder>(ctx);
    decryptor = std::make_unique<ckks::Decryptor>(ctx, sk);
    return;
  }
  encoder = std::make_unique<ckks::CkksEncoder>(context);
  decryptor = std::make_unique<ckks::Decryptor>(context, rlwe::derive_subring_secret(*ctx, sk, *context));
}

std::vector<Ciphertext> encrypt_inputs(const Plan& plan, const ckks::CkksEncoder& encoder,
                                       const ckks::Encryptor& encryptor,
                                       const std::vector<std::vector<double>>& inputs) {
  const auto& p = plan.params;
  const int top = p.max_level();
  const std::vector<std::vector<double>> slots = plan.packing_mode().pack_inputs(plan, inputs);
  for (const auto& v : slots)
    for (double x : v) VEIL_REQUIRE(std::isfinite(x), "input contains a non-finite value");
  std::vector<Ciphertext> cts(slots.size());
  parallel_for(slots.size(), [&](std::size_t i) {
    cts[i] = encryptor.encrypt(encoder, slots[i], p.scale, top, plan.slots);
  });
  return cts;
}

double agreement_tolerance(const Plan& plan, const std::vector<double>& reference) {
  double range = 1;
  for (double v : reference) range = std::max(range, std::abs(v));
  const double bits = std::min(plan.predicted_precision_bits, PlanOptions{}.min_precision_bits) - 2;
  return range * std::exp2(-std::max(bits, 1.0));
}

void check_result(const Plan& plan, const std::vector<Ciphertext>& outputs) {
  // Throughput mode: one ciphertext per logit, a count the plan alone does not hold (the
  // protocol's client checks it against ServerInfo).
  if (const auto want = plan.packing_mode().result_ciphertexts(plan)) {
    VEIL_REQUIRE(outputs.size() == *want, "not a result of this model: " << outputs.size()
                                                                         << " ciphertext(s), its result has "
                                                                         << *want);
  }
  VEIL_REQUIRE(!outputs.empty(), "not a result of this model: no ciphertexts");
  // The level the model leaves its result at (a server may switch it lower to send fewer
  // bytes). A client's public plan has no stages: every model uses at least one level, so
  // a result is below the top one, where fresh inputs are.
  const int top = plan.params.max_level();
  const int level = plan.stages.empty() ? std::max(top - 1, 0) : plan.stages.back().level_out;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Ciphertext& c = outputs[i];
    VEIL_REQUIRE(c.size() == 2, "result ciphertext " << i << " has " << c.size()
                                                     << " polynomials (not relinearised); a result has 2");
    VEIL_REQUIRE(
        c.level() <= level,
        "not a result of this model: ciphertext "
            << i << " is at level " << c.level() << ", the model's results are at level " << level
            << " or below"
            << (c.level() == top ? " (this looks like an encrypted input: run the model on it first)" : ""));
    const std::size_t slots = plan.small_params ? plan.slots / 2 : plan.slots;
    VEIL_REQUIRE(c.slots() == slots, "not a result of this model: ciphertext "
                                         << i << " has " << c.slots() << " slots, expected " << slots);
    VEIL_REQUIRE(c.n() == plan.result_params().n(), "not a result of this model: ciphertext "
                                                        << i << " has ring degree " << c.n() << ", expected "
                                                        << plan.result_params().n());
    // Rescaling keeps the scale within a factor of the plan's (the primes are near it).
    VEIL_REQUIRE(std::isfinite(c.scale()) && std::abs(std::log2(c.scale() / plan.params.scale)) < 2,
                 "not a result of this model: ciphertext " << i << " has scale 2^" << std::log2(c.scale())
                                                           << ", the plan's is 2^"
                                                           << std::log2(plan.params.scale));
  }
}

std::vector<std::vector<double>> decrypt_outputs(const Plan& plan, const ckks::CkksEncoder& encoder,
                                                 const ckks::Decryptor& decryptor,
                                                 const std::vector<Ciphertext>& outputs, std::size_t images) {
  check_result(plan, outputs);
  VEIL_REQUIRE(encoder.context()->n() == plan.result_params().n(),
               "this plan's results are in the ring of degree "
                   << plan.result_params().n() << " (a ring switch); decrypt them with nn::ResultRing");
  std::vector<std::vector<double>> decoded(outputs.size());
  parallel_for(outputs.size(),
               [&](std::size_t i) { decoded[i] = encoder.decode_real(decryptor.decrypt(outputs[i])); });
  return plan.packing_mode().unpack_outputs(plan, decoded, images);
}

EncryptedNetwork::EncryptedNetwork(Network net, const Plan& plan, ckks::ContextPtr ctx,
                                   std::size_t cache_bytes, bool prefault)
    : net_(std::move(net)), plan_(plan), ctx_(std::move(ctx)), encoder_(ctx_), eval_(ctx_) {
  VEIL_REQUIRE(ctx_->params().q == plan_.params.q && ctx_->params().p == plan_.params.p,
               "context does not match the plan's parameters");
  VEIL_REQUIRE(plan_.stages.size() == net_.stages.size(), "plan and network have different stage counts");
  check_graph(net_);
  readers_.assign(net_.stages.size() + 1, 0);
  for (std::size_t k = 0; k < net_.stages.size(); ++k)
    for (int src : net_.inputs_of(static_cast<int>(k))) ++readers_[src + 1];
  const bool layouts = plan_.packing_mode().has_layouts();
  if (layouts)
    VEIL_REQUIRE(plan_.packing.stages.size() == net_.stages.size(), "plan has no packing for this network");
  if (layouts && plan_.small_params) {
    // The planner switches rings in chains only: the switching stage's diagonals are
    // encoded at twice the scale, which the switch halves (ckks/ring_switch.hpp).
    VEIL_REQUIRE(net_.is_chain(), "a ring switch needs a network without residual joins");
    small_ctx_ = ckks::CkksContext::create(*plan_.small_params);
    small_encoder_ = std::make_unique<ckks::CkksEncoder>(small_ctx_);
    small_eval_ = std::make_unique<ckks::Evaluator>(small_ctx_);
    switcher_ = std::make_unique<ckks::RingSwitcher>(ctx_, small_ctx_);
  }
  set_exact_scales();
  if (!layouts) return;
  // The plan chose every layout and holds diagonal positions only: fill in the values
  // for those same layouts (no second search).
  VEIL_REQUIRE(plan_.packing.stages.size() == net_.stages.size(), "plan has no packing for this network");
  transforms_.resize(net_.stages.size());
  // Cache whole stages, lowest level first: encoding costs a fixed FFT plus one NTT per
  // limb, so a cached byte saves the most time where plaintexts have the fewest limbs.
  std::vector<std::size_t> linear;
  for (std::size_t k = 0; k < net_.stages.size(); ++k)
    if (plan_.packing.stages[k].kind == StageKind::kLinear) linear.push_back(k);
  std::stable_sort(linear.begin(), linear.end(), [&](std::size_t a, std::size_t b) {
    return plan_.stages[a].level_in < plan_.stages[b].level_in;
  });
  // Fault in the working set at set-up, not during the first image: the largest linear
  // stage's rotated inputs and partial sums, with room for key-switching temporaries
  // and the blocks the polynomial pool keeps by size. Measured on cifar10-shallow: the
  // first image took 9.5-11.7 s against 6.0-7.8 s for the next ones (370,000 page
  // faults, 1.5 GB), and 7.2 s against 6.6 s with this (no fault). Twice the largest
  // stage's ciphertexts: `veil infer` on three images peaked at 10.27 GB with no reserve,
  // with twice and with three times, and at 10.8 GB with four times, the first image as
  // fast with twice as with four times (docs/benchmarks.md).
  constexpr std::size_t kReserve = 2;
  // Two forms (he::PlaintextCache): the NTT form, ready to use, or the coefficients, one
  // 5-byte copy for every limb and an NTT per limb at use (1.5-1.7x the stage's time,
  // veil_he_bench). Every stage first gets the coefficient form if the budget allows it,
  // then stages move to the NTT form, lowest level first, while the rest still fits; the
  // first that does not fit whole moves as many of its giant-step groups as fit.
  std::vector<he::PlaintextCache> form(net_.stages.size(), he::PlaintextCache::kNone);
  std::vector<std::size_t> ntt_bytes(net_.stages.size()), coefficient_bytes(net_.stages.size());
  std::size_t budget = cache_bytes, working = 0, all_coefficients = 0;
  for (std::size_t k : linear) {
    const PackedStage& ps = plan_.packing.stages[k];
    const int level = plan_.stages[k].level_in;
    const auto mults = static_cast<std::size_t>(ps.counts.plaintext_mults);
    // Double-hoisted maps (he::Hoisting::kAuto) cache their diagonals over Q_level * P.
    const ckks::CkksContext& ring = after_switch(k) ? *small_ctx_ : *ctx_;
    const bool extended = he::double_hoisting_pays(ps.counts, ps.spec.out_blocks, level, ring.num_p());
    // A map pairs its diagonals (complex pairs) in either form, unless double hoisted.
    const std::size_t terms = conjugation_covers(k, level) && !extended
                                  ? he::LinearTransform::paired_plaintexts(ps.spec, ps.giant_step)
                                  : mults;
    ntt_bytes[k] = terms * he::PackedPlaintext::bytes_at(ring, level, extended);
    coefficient_bytes[k] = terms * he::CoefficientPlaintext::bytes_at(ring);
    all_coefficients += coefficient_bytes[k];
  }
  std::vector<std::size_t> ntt_budget(net_.stages.size(), 0);
  if (all_coefficients <= budget) {
    budget -= all_coefficients;
    for (std::size_t k : linear) {
      if (coefficient_bytes[k] == 0) continue;
      form[k] = he::PlaintextCache::kCoefficients;
      const std::size_t extra = ntt_bytes[k] - coefficient_bytes[k];
      if (extra <= budget) {
        form[k] = he::PlaintextCache::kNtt;
        budget -= extra;
      } else if (budget > 0) {
        // The first stage that does not fit whole gets the rest, spent in giant-step groups.
        ntt_budget[k] = budget;
        budget = 0;
      }
    }
  } else {
    for (std::size_t k : linear) {
      if (ntt_bytes[k] == 0 || ntt_bytes[k] > budget) continue;
      form[k] = he::PlaintextCache::kNtt;
      budget -= ntt_bytes[k];
    }
  }
  for (std::size_t k : linear) {
    const PackedStage& ps = plan_.packing.stages[k];
    const int level = plan_.stages[k].level_in;
    // The diagonals' scale lands the result on the stage's planned scale (set_exact_scales).
    const bool small = after_switch(k);
    const double q = static_cast<double>((small ? *small_ctx_ : *ctx_).modulus(level).value());
    double pt_scale = 0;
    if (targets_[k] != 0) {
      const int src = net_.inputs_of(static_cast<int>(k)).front();
      const double in_scale = src < 0 ? plan_.params.scale : scales_[src];
      pt_scale = targets_[k] * q / in_scale;
    }
    // Before a ring switch: twice the scale, which the switch halves, so that it does not
    // cost a bit of precision either.
    if (static_cast<int>(k) == plan_.switch_after()) pt_scale = 2 * (pt_scale != 0 ? pt_scale : q);
    he::LinearTransformSpec spec =
        pack_linear(net_.stages[k].linear(), ps.in, ps.out, !ps.spec.fold_steps.empty(), true);
    // The memory of the diagonals the stage keeps, faulted in on every thread first
    // (rlwe::reserve_heap) and then taken by them: made one by one, each took its pages
    // under the allocator's one lock (it writes a header past every block it carves), so
    // on one thread at a time, where a page the host must back first (these virtual
    // machines take freed memory back within seconds) costs most. Stage by stage, the
    // heap grows no further than the diagonals take it; reserving every stage's at once
    // left holes that raised a server's peak with a session by 30-40 MB.
    const std::size_t kept = form[k] == he::PlaintextCache::kNtt ? ntt_bytes[k]
                             : form[k] == he::PlaintextCache::kCoefficients
                                 ? coefficient_bytes[k] + ntt_budget[k]
                                 : 0;
    if (kept > 0) rlwe::reserve_heap(kept);
    transforms_[k] = std::make_unique<he::LinearTransform>(
        small ? *small_encoder_ : encoder_, std::move(spec), level, ps.giant_step, form[k], pt_scale,
        he::Hoisting::kAuto, ntt_budget[k], conjugation_covers(k, level));
    // The transform owns the stage's diagonals now: its weights go before the next
    // stage's diagonals are made, so the two are never all held at once.
    net_.drop_linear_weights(k);
    forms_.all_ntt_bytes += ntt_bytes[k];
    const std::size_t ntt = transforms_[k]->ntt_plaintext_bytes();
    forms_.ntt_bytes += ntt;
    forms_.coefficient_bytes += transforms_[k]->plaintext_bytes() - ntt;
    if (form[k] == he::PlaintextCache::kNone && ntt_bytes[k] > 0) ++forms_.encoded_per_use;
    const std::size_t ct_bytes =
        2 * static_cast<std::size_t>(level + 1) * (small ? small_ctx_->n() : ctx_->n()) * sizeof(u64);
    const auto cts = static_cast<std::size_t>(ps.counts.baby_rotations + ps.counts.giant_rotations +
                                              ps.spec.in_blocks + ps.spec.out_blocks) +
                     16;
    working = std::max(working, cts * ct_bytes);
  }
  // Throughput mode's weighted sums read the matrices at every evaluation and keep them
  // (it returned above); here every linear stage's weights are gone.
  if (prefault) rlwe::reserve_heap(kReserve * working);
}

EncryptedNetwork::~EncryptedNetwork() = default;

const ckks::Evaluator& EncryptedNetwork::eval_of(std::size_t k) const {
  return after_switch(k) ? *small_eval_ : eval_;
}

std::size_t EncryptedNetwork::plaintext_bytes() const {
  std::size_t b = 0;
  for (const auto& t : transforms_)
    if (t) b += t->plaintext_bytes();
  return b;
}

void EncryptedNetwork::check_inputs(const std::vector<Ciphertext>& in) const {
  const std::size_t want = plan_.packing_mode().input_ciphertexts(plan_, net_.input);
  VEIL_REQUIRE(in.size() == want, "the model takes " << want << " input ciphertexts, got " << in.size());
  for (const auto& c : in) {
    VEIL_REQUIRE(c.size() == 2,
                 "input ciphertext has " << c.size() << " polynomials (not relinearised); a fresh one has 2");
    VEIL_REQUIRE(c.n() == ctx_->n(), "input ciphertext does not belong to these parameters");
    VEIL_REQUIRE(c.level() == plan_.params.max_level(),
                 "input ciphertext at level " << c.level() << ", expected " << plan_.params.max_level());
    VEIL_REQUIRE(c.slots() == plan_.slots,
                 "input ciphertext has " << c.slots() << " slots, expected " << plan_.slots);
    VEIL_REQUIRE(std::abs(c.scale() / plan_.params.scale - 1) < 1e-9, "input ciphertext has the wrong scale");
  }
}

std::vector<Ciphertext> EncryptedNetwork::evaluate(std::vector<Ciphertext> inputs, const EvaluationKeys& keys,
                                                   std::vector<double>* stage_seconds,
                                                   const StageObserver& observer) const {
  check_inputs(inputs);
  if (stage_seconds) stage_seconds->assign(net_.stages.size(), 0.0);
  // values[k + 1]: stage k's output until its last reader has run (values[0]: the input).
  std::vector<std::vector<Ciphertext>> values(net_.stages.size() + 1);
  std::vector<int> unread = readers_;
  values[0] = std::move(inputs);
  // A producer's output for one reader: moved out on its last read, else copied.
  auto take = [&](int src) { return --unread[src + 1] == 0 ? std::move(values[src + 1]) : values[src + 1]; };
  for (std::size_t k = 0; k < net_.stages.size(); ++k) {
    const std::vector<int> inputs_k = net_.inputs_of(static_cast<int>(k));
    if (fusable(k)) {
      double secs[3];
      values[k + 3] = fused_batch(k, take(inputs_k[0]), keys, secs);
      for (int i = 0; i < 3; ++i)
        if (stage_seconds) (*stage_seconds)[k + i] = secs[i];
      // Per-stage observation is not possible inside the fusion; report the pool output.
      if (observer) observer(k + 2, values[k + 3]);
      k += 2;
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    const Stage& st = net_.stages[k];
    std::vector<Ciphertext> x;
    if (st.is<PolyStage>()) {
      x = take(inputs_k[0]);
      const bool relin = !lazy_relin(k);
      const rlwe::RelinKeys& rk = after_switch(k) ? keys.small_relin : keys.relin;
      parallel_for(x.size(), [&](std::size_t i) {
        x[i] = he::evaluate_polynomial(eval_of(k), x[i], st.poly().coefficients, rk, relin);
      });
    } else if (st.is<AddStage>()) {
      // A residual join: the inputs share a layout (latency) or an element order
      // (throughput) and the plan's scale; the evaluator drops the higher one's levels.
      x = take(inputs_k[0]);
      for (std::size_t j = 1; j < inputs_k.size(); ++j) {
        const std::vector<Ciphertext> y = take(inputs_k[j]);
        VEIL_REQUIRE(y.size() == x.size(), "internal: inputs of '" << st.add().name << "' have " << x.size()
                                                                   << " and " << y.size() << " ciphertexts");
        parallel_for(x.size(), [&](std::size_t i) { eval_.add_inplace(x[i], y[i]); });
      }
    } else {
      const std::vector<Ciphertext> in = take(inputs_k[0]);
      if (plan_.packing_mode().weighted_sums())
        x = linear_batch(k, in, &keys.relin);
      else
        x = transforms_[k]->apply(eval_of(k), in, after_switch(k) ? keys.small_galois : keys.galois);
      if (static_cast<int>(k) == plan_.switch_after()) {
        VEIL_REQUIRE(keys.ring_switch, "the plan switches rings after stage '"
                                           << st.linear().name
                                           << "' but the keys hold no ring-switching key");
        for (auto& c : x) c = switcher_->apply(c, *keys.ring_switch);
      }
    }
    if (stage_seconds)
      (*stage_seconds)[k] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (observer) observer(k, x);
    values[k + 1] = std::move(x);
  }
  return std::move(values.back());
}

// A sum-pool output: additions only, no level.
Ciphertext EncryptedNetwork::sum_row(const LinearStage& st, std::size_t o,
                                     const std::vector<Ciphertext>& in) const {
  const auto begin = st.weights.row_ptr[o], end = st.weights.row_ptr[o + 1];
  VEIL_REQUIRE(end > begin, "internal: empty sum-pool row");
  Ciphertext acc = in[st.weights.col[begin]];
  for (auto k = begin + 1; k < end; ++k) eval_.add_inplace(acc, in[st.weights.col[k]]);
  return acc;
}

namespace {

// The stage's weights as the he/ kernel reads them (views into the stage's matrix).
he::SparseWeights sparse_weights(const LinearStage& st) {
  return {st.weights.rows, st.weights.row_ptr, st.weights.col, st.weights.val};
}

}  // namespace

std::vector<Ciphertext> EncryptedNetwork::linear_batch(std::size_t stage, const std::vector<Ciphertext>& in,
                                                       const rlwe::RelinKeys* relin) const {
  const LinearStage& st = net_.stages[stage].linear();
  VEIL_REQUIRE(static_cast<int>(in.size()) == st.in.size(),
               "stage '" << st.name << "' expects " << st.in.size() << " ciphertexts, got " << in.size());
  VEIL_REQUIRE(st.unit_weights || in[0].level() >= 1, "no level left for stage '" << st.name << "'");
  for (const auto& c : in) VEIL_REQUIRE(c.size() == in[0].size(), "internal: mixed ciphertext sizes");
  std::vector<Ciphertext> out(st.out.size());
  if (st.unit_weights) {
    parallel_for(out.size(), [&](std::size_t o) {
      out[o] = sum_row(st, o, in);
      if (st.bias[o] != 0) eval_.add_const_inplace(out[o], st.bias[o]);  // a shift (passes.hpp (e))
    });
    return out;
  }
  // The kernel owns the weight residues at this level (he/weighted_sum.hpp).
  out = he::WeightedSum(ctx_, sparse_weights(st), in[0].level(), weight_scale(stage, in[0])).apply(in);
  parallel_for(out.size(), [&](std::size_t o) { finish_output(st, o, out[o], relin); });
  return out;
}

void EncryptedNetwork::finish_output(const LinearStage& st, std::size_t o, Ciphertext& acc,
                                     const rlwe::RelinKeys* relin) const {
  if (acc.size() == 3) {
    // Lazy inputs (he::evaluate_polynomial): relinearise before rescaling, and rescale
    // for the polynomial's level too.
    eval_.relinearize_inplace(acc, *relin);
    eval_.rescale_inplace(acc);
  }
  eval_.rescale_inplace(acc);
  if (st.bias[o] != 0) eval_.add_const_inplace(acc, st.bias[o]);
}

double EncryptedNetwork::weight_scale(std::size_t stage, const Ciphertext& in) const {
  // Every weighted stage lands exactly on its planned scale (set_exact_scales): where
  // branches join, the inputs of an Add must agree, and along a chain the drift of each
  // monic polynomial (s^2 / q, the relative error doubling with every square) would
  // otherwise compound: 2.5 bits after six squares at a 27-bit scale. The correction rides
  // on the weights' encoding, no extra level or product.
  if (targets_.empty()) return 0;
  const int l = in.level();
  double w = targets_[stage] * static_cast<double>(ctx_->modulus(l).value()) / in.scale();
  if (in.size() == 3) w *= static_cast<double>(ctx_->modulus(l - 1).value());  // rescaled twice
  return w;
}

void EncryptedNetwork::set_exact_scales() {
  // Scales of every stage's output, in the evaluators' own arithmetic. A weighted linear
  // stage lands on the plan's scale, or, when it ends a branch (an Add is its only
  // reader), on the scale of the Add's other inputs, which may be a polynomial's or the
  // block input's (post-activation blocks: x + conv(act(conv(x))) with x = act(...)).
  const std::size_t count = net_.stages.size();
  const double delta = plan_.params.scale;
  std::vector<double>& scale = scales_;
  scale.assign(count, 0.0);
  targets_.assign(count, 0.0);
  std::vector<bool> flexible(count, false);
  auto scale_of = [&](int src) { return src < 0 ? delta : scale[src]; };
  for (std::size_t k = 0; k < count; ++k) {
    const Stage& st = net_.stages[k];
    const std::vector<int> inputs = net_.inputs_of(static_cast<int>(k));
    if (st.is<PolyStage>()) {
      const double s = scale_of(inputs[0]);
      const ckks::CkksContext& ring = after_switch(k) ? *small_ctx_ : *ctx_;
      scale[k] = lazy_relin(k)
                     ? s * s
                     : he::polynomial_scale(ring, st.poly().coefficients, plan_.stages[k].level_in, s);
    } else if (st.is<LinearStage>()) {
      const bool weighted = plan_.packing_mode().weighted(plan_, net_, k);
      if (!weighted) {
        scale[k] = scale_of(inputs[0]);
        continue;
      }
      // A branch end: its only reader is an Add.
      for (std::size_t j = k + 1; j < count && readers_[k + 1] == 1; ++j)
        for (int src : net_.inputs_of(static_cast<int>(j)))
          if (src == static_cast<int>(k)) flexible[k] = net_.stages[j].is<AddStage>();
      if (!flexible[k]) scale[k] = targets_[k] = delta;
    } else {
      double s = 0;
      for (int src : inputs) {
        if (src >= 0 && flexible[src]) continue;
        VEIL_REQUIRE(s == 0 || std::abs(scale_of(src) / s - 1) < 1e-9,
                     "node '" << st.add().name << "': its inputs arrive at different scales (2^"
                              << std::log2(s) << " and 2^" << std::log2(scale_of(src))
                              << "); end one of the branches with a linear stage (e.g. a convolution), "
                              << "whose weights then carry the correction");
        s = scale_of(src);
      }
      if (s == 0) s = delta;
      for (int src : inputs)
        if (src >= 0 && flexible[src]) scale[src] = targets_[src] = s;
      scale[k] = s;
    }
  }
}

bool EncryptedNetwork::reads_only_previous(std::size_t k) const {
  return k > 0 && net_.inputs_of(static_cast<int>(k)) == std::vector<int>{static_cast<int>(k) - 1} &&
         readers_[k] == 1;
}

namespace {

// A unit-weight stage without a bias: additions only. A shift (passes.hpp (e)) also has
// unit weights but adds a constant, which the lazy and fused paths below do not carry.
bool sum_pool(const LinearStage& st) {
  return st.unit_weights && std::all_of(st.bias.begin(), st.bias.end(), [](double b) { return b == 0.0; });
}

}  // namespace

bool EncryptedNetwork::lazy_relin(std::size_t k) const {
  // Throughput mode, a monic quadratic, and a weighted linear stage (possibly after sum
  // pools) that will relinearise its outputs.
  if (!plan_.packing_mode().weighted_sums()) return false;
  const auto& c = net_.stages[k].poly().coefficients;
  if (c.size() != 3 || c[2] != 1.0) return false;
  for (std::size_t j = k + 1; j < net_.stages.size(); ++j) {
    const Stage& s = net_.stages[j];
    // Only along a path no other stage reads (an Add needs relinearised, rescaled inputs).
    if (!s.is<LinearStage>() || !reads_only_previous(j)) return false;
    if (!s.linear().unit_weights) return true;
    if (!sum_pool(s.linear())) return false;
  }
  return false;
}

bool EncryptedNetwork::fusable(std::size_t k) const {
  if (!plan_.packing_mode().weighted_sums() || k + 2 >= net_.stages.size()) return false;
  const Stage &a = net_.stages[k], &b = net_.stages[k + 1], &c = net_.stages[k + 2];
  if (!reads_only_previous(k + 1) || !reads_only_previous(k + 2)) return false;
  if (!a.is<LinearStage>() || a.linear().unit_weights || !b.is<PolyStage>() || !c.is<LinearStage>() ||
      !sum_pool(c.linear()))
    return false;
  // Every pre-pool value feeds at most one pool output (stride = kernel), so computing
  // them per pool output does no work twice.
  std::vector<int> uses(c.linear().in.size(), 0);
  for (int col : c.linear().weights.col)
    if (++uses[col] > 1) return false;
  return true;
}

std::vector<Ciphertext> EncryptedNetwork::fused_batch(std::size_t k, const std::vector<Ciphertext>& in,
                                                      const EvaluationKeys& keys, double seconds[3]) const {
  const LinearStage& conv = net_.stages[k].linear();
  const LinearStage& pool = net_.stages[k + 2].linear();
  const auto& coeffs = net_.stages[k + 1].poly().coefficients;
  const he::WeightedSum weighted(ctx_, sparse_weights(conv), in[0].level(), weight_scale(k, in[0]));
  const bool relin_poly = !lazy_relin(k + 1);
  std::vector<Ciphertext> out(pool.out.size());
  std::vector<double> cpu(3 * out.size(), 0.0);
  const auto wall = std::chrono::steady_clock::now();
  parallel_for(out.size(), [&](std::size_t o) {
    for (auto e = pool.weights.row_ptr[o]; e < pool.weights.row_ptr[o + 1]; ++e) {
      auto t = std::chrono::steady_clock::now();
      const auto c = static_cast<std::size_t>(pool.weights.col[e]);
      Ciphertext v = weighted.apply_row(static_cast<int>(c), in);
      finish_output(conv, c, v, &keys.relin);
      auto t2 = std::chrono::steady_clock::now();
      v = he::evaluate_polynomial(eval_, v, coeffs, keys.relin, relin_poly);
      auto t3 = std::chrono::steady_clock::now();
      if (out[o].empty())
        out[o] = std::move(v);
      else
        eval_.add_inplace(out[o], v);
      const auto t4 = std::chrono::steady_clock::now();
      cpu[3 * o] += std::chrono::duration<double>(t2 - t).count();
      cpu[3 * o + 1] += std::chrono::duration<double>(t3 - t2).count();
      cpu[3 * o + 2] += std::chrono::duration<double>(t4 - t3).count();
    }
  });
  // Split the wall time between the three stages in proportion to their CPU time.
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
  double parts[3] = {0, 0, 0};
  for (std::size_t i = 0; i < cpu.size(); ++i) parts[i % 3] += cpu[i];
  const double sum = parts[0] + parts[1] + parts[2];
  for (int i = 0; i < 3; ++i) seconds[i] = sum > 0 ? total * parts[i] / sum : 0;
  return out;
}

}  // namespace veil::nn
