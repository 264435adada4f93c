// The hybrid mode's preprocessing stage (Delphi, Mishra et al., USENIX Security 2020,
// section 4.1; Chen et al. 2025): input-independent, run before the client's input exists.
//
// For each linear op the client draws a fresh mask r (uniform in Z_t, t = p the share
// field) and sends Enc(r) under the exact scheme with coefficient encoding (one block of
// a convolution per ciphertext product, bfv/conv_layout.hpp). The server computes
// Enc(W r - s) for a fresh mask s of its own, floods the noise (bfv/flood.hpp) and returns
// only the coefficients that carry outputs. The client decrypts W r - s and never sees W;
// the server sees only ciphertexts.
//
// Beaver squares and triples come from the same scheme with SIMD batching, N per
// ciphertext: for squares the client sends Enc(a_c) and receives Enc(2 a_c a_s - u)
// (flooded), so that a^2 = (a_c^2 + 2 a_c a_s - u) + (a_s^2 + u) for a = a_c + a_s; for
// triples Enc(a_c), Enc(b_c) and Enc(a_c b_s + b_c a_s - u). No trusted dealer.
//
// Both roles are written against net::Channel: tests run them in one process over the
// in-memory pair, `veil serve` / `veil client` over TCP.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "veil/bfv/context.hpp"
#include "veil/bfv/conv_layout.hpp"
#include "veil/bfv/plaintext.hpp"
#include "veil/hybrid/online.hpp"
#include "veil/hybrid/program.hpp"
#include "veil/net/channel.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::hybrid {

// Over a two-prime share ring the exchange below runs once per prime, p_0 first: the keys
// frame holds both pairs of keys (linear_0, beaver_0, linear_1, beaver_1), then the
// linear requests and responses and the Beaver request and response for p_0, then the
// same for p_1. The client's masks are drawn per residue, so their CRT combination is
// uniform over the whole ring.
//
// Frame types of the hybrid protocol (the host owns 1, 8 and 9; the non-interactive
// protocol 2..7; the hybrid protocol's requests and acknowledgements around these frames
// are 26..31, protocol/hybrid/messages.hpp).
enum class Message : std::uint16_t {
  kKeys = 20,            // client -> server: the two public keys
  kLinearRequest = 21,   // client -> server: Enc(r) per input block of one linear op
  kLinearResponse = 22,  // server -> client: flooded Enc(W r - s) per output block
  kBeaverRequest = 23,   // client -> server: Enc(a_c) (and Enc(b_c)) per batch
  kBeaverResponse = 24,  // server -> client: flooded products
  kShares = 25,          // online phase: share vectors (mpc::ChannelExchange)
};

// The two parameter sets, chosen from public information only: t = p, the layers' shapes
// and the public weight bound 2^31 (never the weights themselves, whose norms would leak).
// A two-prime share ring (mpc/field.hpp) has one pair per prime, t = p_r: preprocessing
// runs once per prime, and the residues of its results are the shares' residues.
struct HeParameters {
  bfv::ContextPtr linear;            // coefficient encoding, L1 bound of the widest layer; t = p_0
  bfv::ContextPtr beaver;            // SIMD batching, two arbitrary plaintexts per product; t = p_0
  bfv::ContextPtr linear2, beaver2;  // the same with t = p_1; null for a one-prime field
  int residues() const { return linear2 ? 2 : 1; }
  const bfv::ContextPtr& linear_of(int r) const { return r == 0 ? linear : linear2; }
  const bfv::ContextPtr& beaver_of(int r) const { return r == 0 ? beaver : beaver2; }
};
HeParameters he_parameters(const Program& program);

// What the linear layers' preprocessing costs per inference, from the public program (both
// primes of a two-prime ring summed): for `veil plan`.
struct PreprocessCost {
  std::size_t ciphertexts_up = 0, ciphertexts_down = 0;  // Enc(r) blocks, Enc(W r - s) blocks
  std::size_t products = 0;                              // ciphertext x plaintext products
  std::size_t block_bytes = 0;  // the server's kernel blocks, all in NTT form (ServerModel)
};
PreprocessCost preprocess_cost(const Program& program, const HeParameters& params);

// What the server prepares once per model: each linear op's layout and its kernel blocks
// as plaintexts in NTT form, up to a memory budget; blocks beyond it are encoded from the
// kept convolution kernel and transformed at every use (an encoding and one NTT per prime,
// about twice the work of the block's product: a PreAct-ResNet-18 took 5.6-6.4 s an image
// with 18,000 of its 33,000 blocks made so, 4.2-4.5 s with all kept). Its blocks take
// 7.0 GiB (both primes of its share ring), which a 24 GB machine holds only once the
// set-up's double network is gone.
class ServerModel {
 public:
  // The program is shared, not copied (a large model's weights are gigabytes).
  // cache_bytes: bytes of blocks kept in NTT form, first layers first.
  ServerModel(std::shared_ptr<const Program> program, HeParameters params,
              std::size_t cache_bytes = std::numeric_limits<std::size_t>::max());
  // A copy of `program`, every block kept.
  ServerModel(const Program& program, HeParameters params);
  const Program& program() const { return *program_; }
  const HeParameters& params() const { return params_; }
  struct Layer {
    std::size_t op = 0;
    bfv::ConvLayout layout;
    // [output block]: the input blocks it reads (ConvLayout::block_used), ascending.
    std::vector<std::vector<int>> inputs;
    // [output block][j]: the block for input block inputs[o][j] in NTT form, or an empty
    // plaintext (param_id 0) for one made at each use (prepare_block).
    std::vector<std::vector<bfv::PreparedPlaintext>> kernel;
    bool all_ready = true;
  };
  // The layers prepared for residue r's linear context (t = p_r).
  const std::vector<Layer>& layers(int residue = 0) const {
    return layers_[static_cast<std::size_t>(residue)];
  }
  // Block (o, inputs[o][j]) of layers(residue)[layer] in NTT form: the kept one, or one
  // made now.
  bfv::PreparedPlaintext prepare_block(int residue, std::size_t layer, int o, std::size_t j) const;
  // Bytes of blocks kept in NTT form, and of kernels kept to make the others.
  std::size_t memory_bytes() const;
  // Bytes that keeping every block in NTT form takes, and how many blocks are made at
  // each use (0: all ready).
  std::size_t all_ready_bytes() const { return all_ready_bytes_; }
  std::size_t blocks_per_use() const { return blocks_per_use_; }

 private:
  std::shared_ptr<const Program> program_;
  HeParameters params_;
  std::vector<std::vector<Layer>> layers_;  // [residue]
  // Per linear layer, its convolution kernel (hybrid/conv_form.hpp) when a block of it is
  // made at each use; empty otherwise.
  std::vector<std::vector<std::int64_t>> kernels_;
  std::size_t all_ready_bytes_ = 0, blocks_per_use_ = 0;
};

// The client's side. Holds its secret keys for the session; they never leave it.
class PreprocessClient {
 public:
  PreprocessClient(const Program& program, HeParameters params);
  ~PreprocessClient();
  void send_keys(net::Channel& ch);
  // One inference's material (masks, W r - s, squares and triples).
  Material run(net::Channel& ch);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// The server's side of one session.
class PreprocessServer {
 public:
  explicit PreprocessServer(std::shared_ptr<const ServerModel> model);
  ~PreprocessServer();
  void receive_keys(net::Channel& ch);
  // The same, for a kKeys frame already received (a host's message loop reads it).
  void receive_keys(const net::Frame& keys);
  bool has_keys() const;
  Material run(net::Channel& ch);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace veil::hybrid
