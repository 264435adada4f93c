// The server's side of the hybrid protocol: one hybrid::ServerModel (the quantised program
// with its weights prepared as plaintexts, shared by every session), the ServerInfo each
// client receives (the public program, never the weights), and per session: the client's
// public keys, preprocessing on request with the server's material kept under an id, and
// online inferences that each consume one stored material (used exactly once: masks
// reused across two inputs would let the client's two masked inputs be subtracted, and the
// server's offsets reused would let the client learn W (x - x')).
//
// The session's material store is bounded in count and age (HandlerOptions); what it
// holds is the server's shares only (per linear op's outputs, squares and triples), a few
// times the model's activations in size.
#pragma once

#include <memory>
#include <string>

#include "veil/hybrid/preprocess.hpp"
#include "veil/protocol/host.hpp"

namespace veil::protocol::hybrid {

struct HandlerOptions {
  std::string dataset;               // for ServerInfo ("mnist")
  std::size_t max_materials = 8;     // unused materials kept per session
  double max_material_age_s = 3600;  // older ones are dropped (and refused as expired)
};

class Handler final : public protocol::Handler {
 public:
  explicit Handler(std::shared_ptr<const veil::hybrid::ServerModel> model, HandlerOptions options = {});
  ~Handler() override;

  std::string protocol() const override;
  std::uint16_t version() const override;
  std::string offers() const override;
  // Twice the largest message the program implies (the keys, one layer's or the Beaver
  // products' ciphertexts, one share vector), + 1 MiB.
  std::uint64_t max_frame_bytes() const override;
  const char* message_name(std::uint16_t type) const override;
  std::unique_ptr<ProtocolSession> open(const Hello& hello, net::Channel& ch, SessionContext& ctx) override;

 private:
  std::shared_ptr<const veil::hybrid::ServerModel> model_;
  HandlerOptions options_;
  Bytes public_program_, linear_parameters_, beaver_parameters_;
  std::uint64_t largest_message_ = 0;
};

}  // namespace veil::protocol::hybrid
