#include "veil/eval/ckks_eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "veil/ckks/serialize.hpp"
#include "veil/common/error.hpp"
#include "veil/common/format.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::eval {

namespace {

using Clock = std::chrono::steady_clock;

double precision_bits(double err) { return err > 0 ? -std::log2(err) : 60.0; }

std::uint64_t wire_bytes(const ckks::CkksContext& ctx, const std::vector<ckks::Ciphertext>& cts) {
  std::uint64_t b = 0;
  for (const auto& c : cts) b += ckks::save_ciphertext(ctx, c, true).size();
  return b;
}

}  // namespace

CkksEvaluation::CkksEvaluation(const nn::Network& net, const nn::Plan& plan, ckks::ContextPtr ctx,
                               std::size_t cache_bytes)
    : net_(net),
      plan_(plan),
      ctx_(ctx),
      keygen_(ctx),
      keys_([&] {
        const auto t = Clock::now();
        nn::EvaluationKeys k = nn::make_evaluation_keys(plan, keygen_);
        keygen_s_ = seconds_since(t);
        return k;
      }()),
      key_bytes_(nn::evaluation_key_bytes(plan, *ctx, keys_)),
      server_(net, plan, ctx, cache_bytes),
      encoder_(ctx),
      encryptor_(ctx, keygen_.secret_key()),
      decryptor_(ctx, keygen_.secret_key()),
      result_(plan, ctx, keygen_.secret_key()) {}

CkksReport CkksEvaluation::run(const Records& records, const Progress& progress) {
  const std::size_t n = records.size();
  VEIL_REQUIRE(records.labels.size() == n,
               "records have " << n << " inputs and " << records.labels.size() << " labels");
  CkksReport r;
  r.count = n;
  r.keygen_s = keygen_s_;
  r.key_bytes = key_bytes_;
  r.stage_seconds.assign(net_.stages.size(), 0.0);
  r.stage_bits.assign(net_.stages.size(), std::nan(""));
  r.predictions.assign(n, 0);
  r.plain_predictions.assign(n, 0);

  // Plaintext reference (double precision, the same merged network).
  std::vector<std::vector<double>> plain(n);
  parallel_for(n, [&](std::size_t i) { plain[i] = nn::evaluate(net_, records.inputs[i]); });

  // Precision of every stage on the first evaluation: decrypt each stage's output and
  // compare with the plaintext trace of the same inputs.
  std::vector<std::vector<std::vector<double>>> traces;  // per image of the first batch
  auto observer = [&](std::size_t k, const std::vector<ckks::Ciphertext>& cts) {
    const bool switched = plan_.output_in_small_ring(k);
    const ckks::CkksEncoder& enc = switched ? *result_.encoder : encoder_;
    const ckks::Decryptor& key = switched ? *result_.decryptor : decryptor_;
    std::vector<std::vector<double>> dec(cts.size());
    parallel_for(cts.size(), [&](std::size_t i) { dec[i] = enc.decode_real(key.decrypt(cts[i])); });
    double err = 0;
    for (std::size_t img = 0; img < traces.size(); ++img) {
      const auto& want = traces[img][k];
      const std::vector<double> got = plan_.packing_mode().unpack_stage(plan_, k, dec, img);
      for (std::size_t e = 0; e < want.size(); ++e) err = std::max(err, std::abs(got[e] - want[e]));
    }
    r.stage_bits[k] = precision_bits(err);
  };

  const std::size_t per_batch = plan_.packing_mode().batch_size(plan_);
  std::size_t done = 0;
  for (std::size_t first = 0; first < n; first += per_batch) {
    const std::size_t count = std::min(per_batch, n - first);
    std::vector<std::vector<double>> batch(records.inputs.begin() + first,
                                           records.inputs.begin() + first + count);
    const bool observe = first == 0;
    if (observe) {
      traces.resize(std::min<std::size_t>(count, 64));
      for (std::size_t i = 0; i < traces.size(); ++i) {
        nn::PlainTrace tr;
        nn::evaluate(net_, batch[i], &tr);
        traces[i] = tr.stage_outputs;
      }
    }
    auto t0 = Clock::now();
    auto cts = nn::encrypt_inputs(plan_, encoder_, encryptor_, batch);
    r.encrypt_s += seconds_since(t0);
    if (observe) r.up_bytes = wire_bytes(*ctx_, cts);
    std::vector<double> secs;
    const auto out = server_.evaluate(
        std::move(cts), keys_, &secs,
        observe ? nn::EncryptedNetwork::StageObserver(observer) : nn::EncryptedNetwork::StageObserver());
    // Server time is the stages' own time: the observer's decryptions run between them.
    for (std::size_t k = 0; k < secs.size(); ++k) r.stage_seconds[k] += secs[k];
    r.evaluate_s += std::accumulate(secs.begin(), secs.end(), 0.0);
    t0 = Clock::now();
    const auto logits = nn::decrypt_outputs(plan_, result_, out, count);
    r.decrypt_s += seconds_since(t0);
    if (observe) r.down_bytes = wire_bytes(*result_.context, out);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t idx = first + i;
      r.predictions[idx] = argmax(logits[i]);
      r.plain_predictions[idx] = argmax(plain[idx]);
      double err = 0;
      for (std::size_t k = 0; k < plain[idx].size(); ++k)
        err = std::max(err, std::abs(plain[idx][k] - logits[i][k]));
      r.max_logit_error = std::max(r.max_logit_error, err);
      const double excess = err / nn::agreement_tolerance(plan_, plain[idx]);
      if (excess > r.worst_excess) r.worst_excess = excess, r.worst = idx, r.worst_logits = logits[i];
      r.correct += r.predictions[idx] == records.labels[idx];
      r.correct_plain += r.plain_predictions[idx] == records.labels[idx];
      r.agree += r.predictions[idx] == r.plain_predictions[idx];
    }
    done += count;
    if (progress) {
      char summary[96];
      std::snprintf(summary, sizeof summary, "acc %.2f%% agree %.2f%%", 100.0 * r.correct / done,
                    100.0 * r.agree / done);
      progress(done, summary);
    }
  }
  return r;
}

}  // namespace veil::eval
