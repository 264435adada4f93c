// The check that encrypted and plaintext answers agree (`veil infer`, `veil eval`).
#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/cli/session.hpp"
#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::cli {

namespace {

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]));
  return a.size() == b.size() ? e : INFINITY;
}

}  // namespace

void require_agreement(const Model& m, const nn::EncryptedNetwork& server, const nn::EvaluationKeys& keys,
                       const rlwe::SecretKey& sk, const std::vector<double>& input,
                       const std::vector<double>& plain, const std::vector<double>& logits) {
  const auto& plan = m.plan;
  const double err = max_abs_diff(plain, logits), tolerance = nn::agreement_tolerance(plan, plain);
  if (err <= tolerance) return;
  // Which stage: the same input again, every stage decrypted and compared with the
  // plaintext trace.
  nn::PlainTrace trace;
  nn::evaluate(m.network, input, &trace);
  ckks::CkksEncoder encoder(m.context);
  ckks::Encryptor encryptor(m.context, sk);
  ckks::Decryptor decryptor(m.context, sk);
  const nn::ResultRing small(plan, m.context, sk);  // the stages after a ring switch
  std::string stage;
  auto observer = [&](std::size_t k, const std::vector<ckks::Ciphertext>& cts) {
    if (!stage.empty()) return;
    const bool switched = plan.output_in_small_ring(k);
    const ckks::CkksEncoder& enc = switched ? *small.encoder : encoder;
    const ckks::Decryptor& dec_key = switched ? *small.decryptor : decryptor;
    std::vector<std::vector<double>> dec(cts.size());
    parallel_for(cts.size(), [&](std::size_t i) { dec[i] = enc.decode_real(dec_key.decrypt(cts[i])); });
    const std::vector<double> got = plan.packing_mode().unpack_stage(plan, k, dec, 0);
    const auto& want = trace.stage_outputs[k];
    const double e = max_abs_diff(got, want), t = nn::agreement_tolerance(plan, want);
    if (e > t) {
      char line[256];
      std::snprintf(line, sizeof line, "stage %zu '%s' (level %d -> %d): error %.3g, tolerance %.3g", k,
                    plan.stages[k].name.c_str(), plan.stages[k].level_in, plan.stages[k].level_out, e, t);
      stage = line;
    }
  };
  try {
    server.evaluate(nn::encrypt_inputs(plan, encoder, encryptor, {input}), keys, nullptr, observer);
  } catch (const std::exception& e) {
    stage = std::string("(the stage-by-stage rerun failed: ") + e.what() + ")";
  }
  std::ostringstream os;
  os << "encrypted and plaintext logits disagree by " << err << ", beyond the planned precision (tolerance "
     << tolerance << ", " << plan.predicted_precision_bits << " bits predicted); first stage beyond it: "
     << (stage.empty() ? "none (only the final result)" : stage)
     << ". The answer is not trustworthy: check the model's weights and ranges (veil plan)";
  throw std::runtime_error(os.str());
}

}  // namespace veil::cli
