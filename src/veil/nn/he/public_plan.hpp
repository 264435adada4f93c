// The client's half of a plan: everything a client needs to normalise, pack, encrypt,
// make keys and decrypt (input shape, normalisation, class names, parameters, layouts,
// rotation steps, counts), and nothing of the model itself (no stages, no weights).
// The server builds it from its network and plan; the client turns it back into the
// minimal nn::Network (no stages) and nn::Plan that encrypt_inputs, decrypt_outputs and
// make_evaluation_keys need, validating everything first: a server cannot make it pick
// insecure parameters (ckks validation at 128 bits) or index outside its buffers.
// The non-interactive protocol's ServerInfo carries one (protocol/ni/messages.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veil/ckks/context.hpp"
#include "veil/common/bytes.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/network.hpp"

namespace veil::nn {

// Longest model, data-set and class name a public plan holds (longer ones are cut).
inline constexpr std::size_t kMaxPublicName = 256;

struct PublicPlan {
  std::string model, dataset;
  Shape input;
  std::vector<double> mean, std;  // per input channel
  std::vector<std::string> classes;
  Mode mode = Mode::kLatency;
  Bytes parameters;                    // ckks::save_parameters
  std::uint64_t slots = 0;             // slots per ciphertext (throughput: images per batch)
  Layout input_layout, output_layout;  // modes with layouts (latency)
  std::vector<int> rotation_steps, rotation_key_levels;
  std::uint32_t max_batch = 1;                                  // images per request
  std::uint32_t input_ciphertexts = 0, output_ciphertexts = 0;  // per request
  // Ring switching (empty parameters: none): the smaller ring, the stage after which it
  // takes over, and its rotation keys (the output layout then has slots / 2 slots).
  Bytes small_parameters;
  std::int32_t switch_after = -1;
  std::vector<int> small_rotation_steps, small_rotation_key_levels;
  // Each ring's conjugation key level (-1: none), Plan::conjugation_key_level.
  std::int32_t conjugation_key_level = -1, small_conjugation_key_level = -1;
  bool operator==(const PublicPlan&) const = default;
};

PublicPlan make_public_plan(const Network& net, const Plan& plan);

struct PublicModel {
  Network network;  // no stages
  Plan plan;        // mode, params, slots, packing.input/output, rotation steps and levels
  ckks::ContextPtr context;
  ckks::ContextPtr result_context;  // the ring results come in (context, or the smaller ring)
};
// Throws std::runtime_error naming the first inconsistency (std::invalid_argument for
// parameters that do not validate).
PublicModel public_model(const PublicPlan& info);

// Ciphertexts per request and per result, as both sides count them.
std::size_t input_ciphertexts(const Network& net, const Plan& plan);
std::size_t output_ciphertexts(const Network& net, const Plan& plan);

}  // namespace veil::nn
