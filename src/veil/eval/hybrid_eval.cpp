#include "veil/eval/hybrid_eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <thread>

#include "veil/common/error.hpp"
#include "veil/common/format.hpp"
#include "veil/hybrid/online.hpp"
#include "veil/mpc/channel_exchange.hpp"
#include "veil/net/memory_channel.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::eval {

namespace {

using Clock = std::chrono::steady_clock;

// Runs the server part on a thread and the client part here; rethrows the first error.
void both(const std::function<void()>& server, const std::function<void()>& client) {
  std::exception_ptr es;
  std::thread ts([&] {
    try {
      server();
    } catch (...) {
      es = std::current_exception();
    }
  });
  try {
    client();
  } catch (...) {
    ts.join();
    if (es) std::rethrow_exception(es);
    throw;
  }
  ts.join();
  if (es) std::rethrow_exception(es);
}

}  // namespace

HybridSession::HybridSession(std::shared_ptr<const hybrid::Program> program, std::size_t cache_bytes)
    : prog_(std::move(program)) {
  VEIL_REQUIRE(prog_ != nullptr, "no program for the hybrid session");
  const auto t = Clock::now();
  hp_ = hybrid::he_parameters(*prog_);
  model_ = std::make_shared<const hybrid::ServerModel>(prog_, hp_, cache_bytes);
  server_setup_s_ = seconds_since(t);
  const auto t2 = Clock::now();
  client_ = std::make_unique<hybrid::PreprocessClient>(*prog_, hp_);
  server_ = std::make_unique<hybrid::PreprocessServer>(model_);
  std::tie(sch_, cch_) = net::make_memory_pair();
  both([&] { server_->receive_keys(*sch_); }, [&] { client_->send_keys(*cch_); });
  keys_s_ = seconds_since(t2);
  key_bytes_ = cch_->bytes_sent();
}

std::vector<double> HybridSession::infer(const std::vector<double>& x, HybridStats& st) {
  const auto up0 = cch_->bytes_sent(), down0 = cch_->bytes_received();
  hybrid::Material sm, cm;
  auto t = Clock::now();
  both([&] { sm = server_->run(*sch_); }, [&] { cm = client_->run(*cch_); });
  st.preprocess_s = seconds_since(t);
  const auto up1 = cch_->bytes_sent(), down1 = cch_->bytes_received();
  st.pre_up = up1 - up0, st.pre_down = down1 - down0;
  const mpc::Field f = prog_->field();
  const auto type = static_cast<std::uint16_t>(hybrid::Message::kShares);
  mpc::ChannelExchange es(*sch_, mpc::Role::kServer, f, type), ec(*cch_, mpc::Role::kClient, f, type);
  std::vector<double> logits;
  hybrid::OnlineStats os;
  t = Clock::now();
  std::exception_ptr refused;  // after the whole online stage: its cost is counted
  try {
    both([&] { hybrid::run_server(*prog_, std::move(sm), es); },
         [&] { logits = hybrid::run_client(*prog_, std::move(cm), x, ec, &os); });
  } catch (const hybrid::ResultRefused&) {
    refused = std::current_exception();
  }
  st.online_s = seconds_since(t);
  st.online_up = cch_->bytes_sent() - up1, st.online_down = cch_->bytes_received() - down1;
  st.online_rounds = os.rounds;
  if (refused) std::rethrow_exception(refused);
  return logits;
}

HybridReport run_hybrid(std::shared_ptr<const hybrid::Program> program, const nn::Network& net,
                        const Records& records, const Progress& progress, std::size_t cache_bytes) {
  std::vector<std::vector<double>> plain;
  for (const auto& x : records.inputs) plain.push_back(nn::evaluate(net, x));
  return run_hybrid(std::move(program), plain, records, progress, cache_bytes);
}

HybridReport run_hybrid(std::shared_ptr<const hybrid::Program> program,
                        const std::vector<std::vector<double>>& plain_outputs, const Records& records,
                        const Progress& progress, std::size_t cache_bytes) {
  VEIL_REQUIRE(records.labels.size() == records.size(),
               "records have " << records.size() << " inputs and " << records.labels.size() << " labels");
  VEIL_REQUIRE(plain_outputs.size() == records.size(), "records have " << records.size() << " inputs and "
                                                                       << plain_outputs.size()
                                                                       << " plaintext outputs");
  HybridSession session(std::move(program), cache_bytes);
  HybridReport r;
  r.count = records.size();
  r.predictions.assign(r.count, -1);
  r.plain_predictions.assign(r.count, -1);
  for (std::size_t i = 0; i < r.count; ++i) {
    const auto& x = records.inputs[i];
    const auto& plain = plain_outputs[i];
    r.plain_predictions[i] = argmax(plain);
    HybridStats st;
    std::vector<double> logits;
    try {
      logits = session.infer(x, st);
    } catch (const hybrid::ResultRefused&) {
      // The protocol ran to its end: the time and bytes were spent, the answer is withheld.
      ++r.refused;
    }
    r.total += st;
    if (!logits.empty()) {
      for (std::size_t k = 0; k < plain.size(); ++k)
        r.max_logit_error = std::max(r.max_logit_error, std::abs(plain[k] - logits[k]));
      r.predictions[i] = argmax(logits);
      r.agree += r.predictions[i] == r.plain_predictions[i];
      r.correct += r.predictions[i] == records.labels[i];
    }
    r.correct_plain += r.plain_predictions[i] == records.labels[i];
    if (progress)
      progress(i + 1, "agree " + std::to_string(r.agree) + "/" + std::to_string(i + 1) +
                          (r.refused ? ", refused " + std::to_string(r.refused) : ""));
  }
  return r;
}

}  // namespace veil::eval
