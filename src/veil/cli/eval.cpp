// `veil eval`: encrypted inference over a test set, compared with the plaintext model:
// accuracy both ways, agreement of the predictions, the largest logit error, time per
// image and per stage, precision per stage; a JSON report and a PNG plot.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/cli/commands.hpp"
#include "veil/cli/data_paths.hpp"
#include "veil/common/error.hpp"
#include "veil/common/file.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/data/dataset.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/report/plot.hpp"
#include "veil/report/progress.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::cli {

namespace {

struct EvalOptions {
  ModelOptions model;
  std::string mode = "latency";
  std::string data;
  std::size_t count = 0;
  bool exact_only = false;
  std::string report, plot;
  bool quiet = false;
  bool simulate = false;
};

double precision_bits(double err) { return err > 0 ? -std::log2(err) : 60.0; }

void run_eval(EvalOptions& o) {
  Model m = open_model(o.model, o.mode);
  const auto& plan = m.plan;
  const auto& net = m.network;
  data::LoadOptions lo;
  lo.max_count = o.count;
  lo.exact_only = o.exact_only;
  lo.num_classes = net.num_outputs();
  const std::string data_path = o.data.empty() ? default_data_dir(net.dataset) : o.data;
  const data::Dataset ds = data::load_dataset(data_path, net.dataset, lo);
  VEIL_REQUIRE(ds.size() > 0, "no records in '" << data_path << "'");
  VEIL_REQUIRE(ds.channels == net.input.c && ds.height == net.input.h && ds.width == net.input.w,
               "'" << data_path << "' holds " << ds.channels << "x" << ds.height << "x" << ds.width
                   << " images; the model takes " << net.input.c << "x" << net.input.h << "x" << net.input.w);
  const std::size_t n = ds.size();
  std::printf("eval %s on %zu %s records from %s (%s mode, N = 2^%d, depth %d, %d threads)\n",
              net.name.c_str(), n, ds.name.c_str(), data_path.c_str(), nn::mode_name(plan.mode),
              plan.params.log_n, plan.depth, num_threads());

  // Plaintext reference (double precision, the same merged network).
  std::vector<std::vector<double>> inputs(n), plain(n);
  parallel_for(n, [&](std::size_t i) {
    const auto px = ds.pixels(i);
    inputs[i] = nn::normalize(net, std::vector<std::uint8_t>(px.begin(), px.end()));
    plain[i] = nn::evaluate(net, inputs[i]);
  });

  auto t = Clock::now();
  rlwe::KeyGenerator keygen(m.context);
  const nn::EvaluationKeys keys = nn::make_evaluation_keys(plan, keygen);
  const double t_keys = seconds_since(t);
  const std::uint64_t key_bytes = rlwe::save_relin_keys(*m.context, keys.relin, true).size() +
                                  rlwe::save_galois_keys(*m.context, keys.galois, true).size();
  nn::EncryptedNetwork server(net, plan, m.context, plaintext_cache_bytes());
  ckks::CkksEncoder encoder(m.context);
  ckks::Encryptor encryptor(m.context, keygen.secret_key());
  ckks::Decryptor decryptor(m.context, keygen.secret_key());

  // Precision of every stage on the first evaluation: decrypt each stage's output and
  // compare with the plaintext trace of the same inputs.
  std::vector<double> stage_bits(net.stages.size(), std::nan(""));
  std::vector<std::vector<std::vector<double>>> traces;  // per image of the first batch
  auto observer = [&](std::size_t k, const std::vector<ckks::Ciphertext>& cts) {
    std::vector<std::vector<double>> dec(cts.size());
    parallel_for(cts.size(), [&](std::size_t i) { dec[i] = encoder.decode_real(decryptor.decrypt(cts[i])); });
    double err = 0;
    for (std::size_t img = 0; img < traces.size(); ++img) {
      const auto& want = traces[img][k];
      const std::vector<double> got = plan.packing_mode().unpack_stage(plan, k, dec, img);
      for (std::size_t e = 0; e < want.size(); ++e) err = std::max(err, std::abs(got[e] - want[e]));
    }
    stage_bits[k] = precision_bits(err);
  };

  std::vector<int> enc_pred(n), plain_pred(n);
  double max_err = 0, t_enc = 0, t_eval = 0, t_dec = 0;
  double worst_excess = 0;  // the largest logit error relative to its tolerance, and where
  std::size_t worst = 0;
  std::vector<double> worst_logits;
  std::vector<double> stage_seconds(net.stages.size(), 0.0);
  std::uint64_t up_bytes = 0, down_bytes = 0;
  const std::size_t per_batch = plan.packing_mode().batch_size(plan);
  std::size_t correct_enc = 0, correct_plain = 0, agree = 0, done = 0;
  report::Progress progress("encrypted eval", n);
  for (std::size_t first = 0; first < n; first += per_batch) {
    const std::size_t count = std::min(per_batch, n - first);
    std::vector<std::vector<double>> batch(inputs.begin() + first, inputs.begin() + first + count);
    const bool observe = first == 0;
    if (observe) {
      traces.resize(std::min<std::size_t>(count, 64));
      for (std::size_t i = 0; i < traces.size(); ++i) {
        nn::PlainTrace tr;
        nn::evaluate(net, batch[i], &tr);
        traces[i] = tr.stage_outputs;
      }
    }
    auto t0 = Clock::now();
    auto cts = nn::encrypt_inputs(plan, encoder, encryptor, batch);
    t_enc += seconds_since(t0);
    if (observe) up_bytes = wire_bytes(*m.context, cts);
    std::vector<double> secs;
    const auto out = server.evaluate(
        std::move(cts), keys, &secs,
        observe ? nn::EncryptedNetwork::StageObserver(observer) : nn::EncryptedNetwork::StageObserver());
    // Server time is the stages' own time: the observer's decryptions run between them.
    for (std::size_t k = 0; k < secs.size(); ++k) stage_seconds[k] += secs[k];
    t_eval += std::accumulate(secs.begin(), secs.end(), 0.0);
    t0 = Clock::now();
    const auto logits = nn::decrypt_outputs(plan, encoder, decryptor, out, count);
    t_dec += seconds_since(t0);
    if (observe) down_bytes = wire_bytes(*m.context, out);
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t idx = first + i;
      enc_pred[idx] = argmax(logits[i]);
      plain_pred[idx] = argmax(plain[idx]);
      double err = 0;
      for (std::size_t k = 0; k < plain[idx].size(); ++k)
        err = std::max(err, std::abs(plain[idx][k] - logits[i][k]));
      max_err = std::max(max_err, err);
      const double excess = err / nn::agreement_tolerance(plan, plain[idx]);
      if (excess > worst_excess) worst_excess = excess, worst = idx, worst_logits = logits[i];
      correct_enc += enc_pred[idx] == ds.labels[idx];
      correct_plain += plain_pred[idx] == ds.labels[idx];
      agree += enc_pred[idx] == plain_pred[idx];
    }
    done += count;
    progress.tick(count);
    char suffix[96];
    std::snprintf(suffix, sizeof suffix, "acc %.2f%% agree %.2f%%", 100.0 * correct_enc / done,
                  100.0 * agree / done);
    progress.set_suffix(suffix);
  }
  progress.finish();

  const double enc_acc = static_cast<double>(correct_enc) / n,
               plain_acc = static_cast<double>(correct_plain) / n;
  const double agreement = static_cast<double>(agree) / n;
  const double per_image = (t_enc + t_eval + t_dec) / n;
  std::printf(
      "\n  plaintext accuracy   %.2f%%\n  encrypted accuracy   %.2f%%\n  agreement            %.2f%% (%zu of "
      "%zu)\n"
      "  max logit error      %.2e\n",
      100 * plain_acc, 100 * enc_acc, 100 * agreement, agree, n, max_err);
  std::printf(
      "  time                 %.4f s per image (encrypt %.3f s, evaluate %.3f s, decrypt %.3f s in all; keys "
      "%.2f s)\n",
      per_image, t_enc, t_eval, t_dec, t_keys);
  std::printf("  bytes                evaluation keys %s; per %s: upload %s, download %s\n",
              human_bytes(key_bytes).c_str(), plan.packing_mode().unit(), human_bytes(up_bytes).c_str(),
              human_bytes(down_bytes).c_str());
  std::printf("  stages (seconds over the run, precision in bits on the first %s):\n",
              plan.packing_mode().unit());
  for (std::size_t k = 0; k < net.stages.size(); ++k)
    std::printf("    %-46s %9.3f s  %5.1f bits\n", plan.stages[k].name.substr(0, 46).c_str(),
                stage_seconds[k], stage_bits[k]);

  if (!o.report.empty()) {
    nlohmann::json j;
    j["model"] = net.name;
    j["dataset"] = ds.name;
    // Relative to the working directory where possible, so reports kept in the
    // repository do not name one machine's folders.
    {
      std::error_code ec;
      const auto rel = std::filesystem::relative(data_path, std::filesystem::current_path(), ec);
      const bool inside = !ec && !rel.empty() && rel.native().rfind("..", 0) != 0;
      j["data"] = inside ? rel.string() : data_path;
    }
    j["mode"] = nn::mode_name(plan.mode);
    j["count"] = n;
    j["exact_only"] = o.exact_only;
    j["threads"] = num_threads();
    j["params"] = {{"log_n", plan.params.log_n},
                   {"depth", plan.depth},
                   {"log_qp", plan.params.log_qp()},
                   {"scale_bits", std::log2(plan.params.scale)},
                   {"dnum", plan.params.dnum},
                   {"slots", plan.slots},
                   {"rotation_keys", plan.rotation_steps.size()},
                   {"secure_128", plan.params.is_128_bit_secure()}};
    j["plaintext_accuracy"] = plain_acc;
    j["encrypted_accuracy"] = enc_acc;
    j["agreement"] = agreement;
    j["max_logit_error"] = max_err;
    j["seconds_per_image"] = per_image;
    j["seconds"] = {{"keygen", t_keys}, {"encrypt", t_enc}, {"evaluate", t_eval}, {"decrypt", t_dec}};
    j["bytes"] = {{"evaluation_keys", key_bytes},
                  {"upload_per_evaluation", up_bytes},
                  {"download_per_evaluation", down_bytes}};
    nlohmann::json stages = nlohmann::json::array();
    for (std::size_t k = 0; k < net.stages.size(); ++k)
      stages.push_back({{"name", plan.stages[k].name},
                        {"level_in", plan.stages[k].level_in},
                        {"level_out", plan.stages[k].level_out},
                        {"seconds", stage_seconds[k]},
                        {"precision_bits", std::isfinite(stage_bits[k]) ? stage_bits[k] : -1.0}});
    j["stages"] = stages;
    j["labels"] = ds.labels;
    j["predictions"] = enc_pred;
    j["plaintext_predictions"] = plain_pred;
    std::ofstream f(o.report);
    VEIL_CHECK_IO(f, "cannot write report '" << o.report << "'");
    f << j.dump(1) << "\n";
    std::printf("report: %s\n", o.report.c_str());
  }
  if (!o.plot.empty()) {
    std::vector<std::string> names;
    for (const auto& s : plan.stages)
      names.push_back(s.name.substr(s.name.rfind('/') == std::string::npos ? 0 : s.name.rfind('/') + 1));
    report::BarPanel time, prec;
    time.title = "Time per stage (" + std::string(nn::mode_name(plan.mode)) + " mode, " + std::to_string(n) +
                 " images)";
    time.y_label = "seconds";
    time.labels = names;
    time.values = stage_seconds;
    prec.title = "Precision per stage (first " + std::string(plan.packing_mode().unit()) + ")";
    prec.y_label = "bits";
    prec.labels = names;
    prec.values = stage_bits;
    prec.style = report::BarPanel::Style::kLine;
    report::write_panels_png(o.plot, {time, prec});
    std::printf("plot: %s\n", o.plot.c_str());
  }
  // After the report (it shows the damage): beyond the planned precision is an error.
  if (worst_excess > 1) {
    std::printf("record %zu: encrypted and plaintext logits disagree beyond the planned precision\n", worst);
    require_agreement(m, server, keys, keygen.secret_key(), inputs[worst], plain[worst], worst_logits);
  }
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd =
      app.add_subcommand("eval", "encrypted inference over a test set, compared with the plaintext model");
  add_model_options(*cmd, o->model, o->mode);
  cmd->add_option("--data,-d", o->data,
                  "directory with IDX files (raw or .gz) or CIFAR-10 binary batches, or the files themselves "
                  "(default: where scripts/setup.sh puts the model's data set)");
  cmd->add_option("--count,-n", o->count, "evaluate only the first K records (default: all)");
  cmd->add_flag("--exact-only", o->exact_only, "CIFAR-10: only records of the exact subset");
  cmd->add_flag("--simulate", o->simulate,
                "hybrid mode: run the protocol's fixed-point arithmetic in the clear instead of the\n"
                "protocol (same predictions up to truncation noise; whole test sets in seconds)");
  cmd->add_option("--report", o->report, "write a JSON report here");
  cmd->add_option("--plot", o->plot, "write a PNG plot (time and precision per stage) here");
  cmd->callback([o] {
    // Hybrid: each image runs the whole protocol (preprocessing included), so the default
    // is the first 100 records.
    if (o->mode == "hybrid") return run_hybrid_eval(o->model, o->data, o->count, o->quiet, o->simulate);
    VEIL_REQUIRE(!o->simulate, "--simulate applies to --mode hybrid only");
    run_eval(*o);
  });
}

}  // namespace veil::cli
