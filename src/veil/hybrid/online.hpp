// The hybrid mode's online stage (Delphi, Mishra et al., USENIX Security 2020, section 4;
// Chen et al. 2025): both parties hold additive shares of every intermediate value.
//
// For a linear op reading value v, with preprocessing material r (the client's mask of
// that op's input) and s (the server's mask of its output):
//   client -> server: v_c - r        server: m = v_s + (v_c - r) = v - r, uniform to it
//   server share:  W m + b + s       client share: W r - s (from preprocessing)
// so the shares add up to W v + b, and the server never sees v, the client never sees W.
// Both then truncate locally (mpc/truncate.hpp). Polynomial activations run on the shares
// with Beaver squares and triples (mpc/activation.hpp); residual Adds are local. At the
// end the server sends its share of the logits and the client alone learns them.
//
// Both roles run the same function, so the two sides of every step sit next to each other.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "veil/hybrid/program.hpp"
#include "veil/mpc/beaver.hpp"
#include "veil/mpc/exchange.hpp"
#include "veil/mpc/share.hpp"

namespace veil::hybrid {

// One party's preprocessing material for one inference, indexed by op (entries of
// non-linear ops are empty). Vectors hold share words: Field::words() per element (two on
// the two-prime ring, interleaved; mpc/field.hpp). It is consumed by the online run, which takes it by value:
// masks reused across two inputs would let the server subtract the two masked inputs.
struct Material {
  mpc::Role role = mpc::Role::kClient;
  // Client: r, the mask of each linear op's input. Server: empty.
  std::vector<std::vector<u64>> mask;
  // Client: W r - s. Server: s.
  std::vector<std::vector<u64>> offset;
  mpc::Squares squares;
  mpc::Triples triples;
};

// Throws std::invalid_argument naming the op when the material does not fit the program
// (wrong role, missing or mis-sized entries, too few squares or triples: e.g. material
// that was already used and moved from).
void check_material(const Program& program, const Material& material, mpc::Role role);

// Ideal functionality of preprocessing, computed in the clear by one trusted party: tests
// only (the protocol computes the same under the exact scheme). {server, client}.
std::pair<Material, Material> deal(const Program& program, mpc::MaskSource& masks);

// What a run exchanged, as this party saw it.
struct OnlineStats {
  int rounds = 0;  // swaps plus one-way messages this party sent or received
  std::int64_t elements_sent = 0, elements_received = 0;
  // Wall time in the linear ops' local work (the server: W m + b + s and the truncation,
  // after the client's masked input arrived) and in the activations (Beaver rounds
  // included, truncations), as this party saw it.
  double linear_s = 0, activation_s = 0;
};

// The server's kernel for y = W m (+ b) over the share ring: hybrid::apply unless given (the
// baseline benchmark passes a naive per-element loop).
using LinearKernel = std::vector<u64> (*)(const mpc::Field&, const QuantLinear&, std::span<const u64>, bool);

// Logits beyond kWrapFactor times the bound the scales were chosen for are refused as
// out of the fixed-point range (a wrapped value, not an answer).
inline constexpr double kWrapFactor = 1024;

// The client's refusal of logits out of the fixed-point range (a std::runtime_error, so
// callers that only report it need not know it); the protocol ran to its end, so the
// session can go on with the next image.
struct ResultRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The client's side: input is one normalised image (C x H x W); returns the logits.
// Throws ResultRefused when the logits come out of the fixed-point range.
std::vector<double> run_client(const Program& program, Material material, const std::vector<double>& input,
                               mpc::Exchange& ex, OnlineStats* stats = nullptr);
// The server's side: learns nothing.
void run_server(const Program& program, Material material, mpc::Exchange& ex, OnlineStats* stats = nullptr,
                LinearKernel kernel = nullptr);

}  // namespace veil::hybrid
