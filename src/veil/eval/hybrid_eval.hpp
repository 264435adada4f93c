// `veil eval --mode hybrid` (and `veil infer --mode hybrid`): the hybrid protocol with
// both parties in this process over the in-memory channel pair (the same code runs over
// TCP): preprocessing under the exact scheme, then the online stage on shares, with the
// time and bytes of each stage, compared with the plaintext network.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "veil/eval/records.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/hybrid/program.hpp"
#include "veil/net/channel.hpp"
#include "veil/nn/network.hpp"

namespace veil::eval {

struct HybridStats {
  double preprocess_s = 0, online_s = 0;
  std::uint64_t pre_up = 0, pre_down = 0, online_up = 0, online_down = 0;
  int online_rounds = 0;
  // Sums time and bytes; rounds are per image, so the most of either.
  HybridStats& operator+=(const HybridStats& o) {
    preprocess_s += o.preprocess_s, online_s += o.online_s;
    pre_up += o.pre_up, pre_down += o.pre_down, online_up += o.online_up, online_down += o.online_down;
    online_rounds = std::max(online_rounds, o.online_rounds);
    return *this;
  }
};

// Both parties over one in-memory channel pair: the server's part on its own thread.
class HybridSession {
 public:
  // The program is shared with the server's model, never copied. cache_bytes: the server
  // model's budget for kernel blocks in NTT form (hybrid::ServerModel).
  explicit HybridSession(std::shared_ptr<const hybrid::Program> program,
                         std::size_t cache_bytes = std::numeric_limits<std::size_t>::max());
  double server_setup_s() const { return server_setup_s_; }
  double keys_s() const { return keys_s_; }
  std::uint64_t key_bytes() const { return key_bytes_; }
  const hybrid::ServerModel& server_model() const { return *model_; }

  // One image: preprocessing, then the online stage. Throws hybrid::ResultRefused when the
  // client refuses the reconstructed logits (the session stays usable), and whatever
  // else either party throws.
  std::vector<double> infer(const std::vector<double>& x, HybridStats& stats);

 private:
  std::shared_ptr<const hybrid::Program> prog_;
  hybrid::HeParameters hp_;
  std::shared_ptr<const hybrid::ServerModel> model_;
  std::unique_ptr<hybrid::PreprocessClient> client_;
  std::unique_ptr<hybrid::PreprocessServer> server_;
  std::unique_ptr<net::Channel> sch_, cch_;
  double server_setup_s_ = 0, keys_s_ = 0;
  std::uint64_t key_bytes_ = 0;
};

struct HybridReport {
  std::size_t count = 0;    // records evaluated
  std::size_t refused = 0;  // of which the client refused the result (out of the fixed-point range)
  // Predictions right (hybrid, plaintext) and equal, over all records: a refused record is
  // neither right nor in agreement.
  std::size_t correct = 0, correct_plain = 0, agree = 0;
  double max_logit_error = 0;    // over the answered records
  HybridStats total;             // time and bytes summed over the records; the most online rounds
  std::vector<int> predictions;  // per record, -1 where refused
  std::vector<int> plain_predictions;
  std::size_t answered() const { return count - refused; }
  std::uint64_t preprocess_bytes() const { return total.pre_up + total.pre_down; }
  std::uint64_t online_bytes() const { return total.online_up + total.online_down; }
};

// Every record through one session, against the plaintext network's outputs `plain` (one
// per record, computed beforehand so that a caller can free the network's weights and
// leave that memory to the server's kernel blocks). A refused record is counted and the
// run goes on.
HybridReport run_hybrid(std::shared_ptr<const hybrid::Program> program,
                        const std::vector<std::vector<double>>& plain, const Records& records,
                        const Progress& progress = {},
                        std::size_t cache_bytes = std::numeric_limits<std::size_t>::max());
// The same, evaluating `net` on each record first.
HybridReport run_hybrid(std::shared_ptr<const hybrid::Program> program, const nn::Network& net,
                        const Records& records, const Progress& progress = {},
                        std::size_t cache_bytes = std::numeric_limits<std::size_t>::max());

}  // namespace veil::eval
