// The server's side of the non-interactive protocol: one planned model per mode it offers
// (latency, throughput), the ServerInfo each client receives, and per session: key
// lookup and upload (checked against the plan, held in the host's key cache) and
// evaluation of Infer requests, run as jobs on the process's pool (veil::run_job).
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "veil/ckks/context.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/network.hpp"
#include "veil/protocol/host.hpp"

namespace veil::protocol::ni {

// A planned model the server evaluates: one per mode it offers.
struct ServedModel {
  nn::Network network;
  nn::Plan plan;
  ckks::ContextPtr context;
  // Latency mode: bytes of encoded weight diagonals kept (nn::EncryptedNetwork).
  std::size_t plaintext_cache_bytes = nn::default_plaintext_cache_bytes();
};

class Handler final : public protocol::Handler {
 public:
  // At most one model per mode.
  explicit Handler(std::vector<ServedModel> models);
  ~Handler() override;

  std::string protocol() const override;
  std::uint16_t version() const override;
  std::string offers() const override;
  // Twice the largest message the plans imply (keys or a full request), + 1 MiB.
  std::uint64_t max_frame_bytes() const override;
  const char* message_name(std::uint16_t type) const override;
  std::unique_ptr<ProtocolSession> open(const Hello& hello, net::Channel& ch, SessionContext& ctx) override;
  // How the latency-mode model keeps its weight diagonals (all zero when that mode is not
  // served), for the server's set-up report.
  nn::WeightForms weight_forms() const;

  struct Mode;

 private:
  std::vector<std::unique_ptr<Mode>> modes_;  // indexed by nn::Mode (kPackingModeCount)
  std::uint64_t largest_message_ = 0;
};

}  // namespace veil::protocol::ni
