// `veil eval` in the CKKS modes (latency, throughput): every record encrypted, evaluated
// by the server's EncryptedNetwork and decrypted, both parties in this process, compared
// with the plaintext network; precision per stage on the first evaluation.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/ckks/context.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/eval/records.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::eval {

struct CkksReport {
  std::size_t count = 0;                                  // records evaluated
  std::size_t correct = 0, correct_plain = 0, agree = 0;  // encrypted / plaintext right, same prediction
  double max_logit_error = 0;
  // The record whose logit error is largest relative to nn::agreement_tolerance (> 1:
  // beyond the planned precision), and its encrypted logits.
  double worst_excess = 0;
  std::size_t worst = 0;
  std::vector<double> worst_logits;
  double keygen_s = 0, encrypt_s = 0, evaluate_s = 0, decrypt_s = 0;  // in all
  std::uint64_t key_bytes = 0;                                        // evaluation keys as sent
  std::uint64_t up_bytes = 0, down_bytes = 0;                         // per evaluation (the first)
  std::vector<double> stage_seconds;                                  // per stage, over the run
  std::vector<double> stage_bits;  // per stage, on the first evaluation (NaN: not observed)
  std::vector<int> predictions, plain_predictions;
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
  double plain_accuracy() const { return count ? static_cast<double>(correct_plain) / count : 0; }
  double agreement() const { return count ? static_cast<double>(agree) / count : 0; }
  double seconds_per_image() const { return count ? (encrypt_s + evaluate_s + decrypt_s) / count : 0; }
};

// Keys, server and client of one evaluation (kept for a caller that re-runs a record, e.g.
// to find the stage where a disagreement starts).
class CkksEvaluation {
 public:
  CkksEvaluation(const nn::Network& net, const nn::Plan& plan, ckks::ContextPtr ctx, std::size_t cache_bytes);
  CkksReport run(const Records& records, const Progress& progress = {});

  const nn::EncryptedNetwork& server() const { return server_; }
  const nn::EvaluationKeys& keys() const { return keys_; }
  const rlwe::SecretKey& secret_key() const { return keygen_.secret_key(); }

 private:
  const nn::Network& net_;
  const nn::Plan& plan_;
  ckks::ContextPtr ctx_;
  rlwe::KeyGenerator keygen_;
  double keygen_s_ = 0;
  nn::EvaluationKeys keys_;
  std::uint64_t key_bytes_ = 0;
  nn::EncryptedNetwork server_;
  ckks::CkksEncoder encoder_;
  ckks::Encryptor encryptor_;
  ckks::Decryptor decryptor_;
  nn::ResultRing result_;  // the ring results come in (the smaller one after a ring switch)
};

}  // namespace veil::eval
