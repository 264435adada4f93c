// The model's public plan as it travels in ServerInfo: built by the server from its
// network and plan, and turned back by the client into the minimal nn::Network (input
// shape, normalisation, class names; no stages, no weights) and nn::Plan (parameters,
// layouts, rotation steps) that encrypt_inputs, decrypt_outputs and make_evaluation_keys
// need. The client validates everything before using it: a server cannot make it pick
// insecure parameters (ckks validation at 128 bits) or index outside its buffers.
#pragma once

#include "veil/ckks/context.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/network.hpp"
#include "veil/protocol/messages.hpp"

namespace veil::protocol {

ServerInfo make_server_info(const nn::Network& net, const nn::Plan& plan, std::uint64_t max_frame_bytes);

struct PublicModel {
  nn::Network network;  // no stages
  nn::Plan plan;        // mode, params, slots, packing.input/output, rotation steps and levels
  ckks::ContextPtr context;
};
// Throws net::Error(kBadMessage) naming the first inconsistency.
PublicModel public_model(const ServerInfo& info);

// Images per request and ciphertexts per image batch, as both sides count them.
std::size_t input_ciphertexts(const nn::Network& net, const nn::Plan& plan);
std::size_t output_ciphertexts(const nn::Network& net, const nn::Plan& plan);

}  // namespace veil::protocol
