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
#include "veil/eval/ckks_eval.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/report/plot.hpp"
#include "veil/report/progress.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::cli {

namespace {

void run_eval(EvalOptions& o) {
  Model m = open_model(o.model, o.mode);
  const auto& plan = m.plan;
  const auto& net = m.network;
  data::LoadOptions lo;
  lo.max_count = o.count;
  lo.skip = o.skip;
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

  eval::Records records;
  records.inputs.resize(n);
  records.labels = ds.labels;
  parallel_for(n, [&](std::size_t i) {
    const auto px = ds.pixels(i);
    records.inputs[i] = nn::normalize(net, std::vector<std::uint8_t>(px.begin(), px.end()));
  });
  eval::CkksEvaluation evaluation(net, plan, m.context, plaintext_cache_bytes());
  report::Progress progress("encrypted eval", n);
  std::size_t shown = 0;
  const eval::CkksReport r = evaluation.run(records, [&](std::size_t done, const std::string& summary) {
    progress.tick(done - shown);
    shown = done;
    progress.set_suffix(summary);
  });
  progress.finish();
  const auto& stage_seconds = r.stage_seconds;
  const auto& stage_bits = r.stage_bits;
  const std::size_t agree = r.agree;
  const double max_err = r.max_logit_error, t_keys = r.keygen_s, t_enc = r.encrypt_s, t_eval = r.evaluate_s,
               t_dec = r.decrypt_s;
  const std::uint64_t key_bytes = r.key_bytes, up_bytes = r.up_bytes, down_bytes = r.down_bytes;

  const double enc_acc = r.accuracy(), plain_acc = r.plain_accuracy();
  const double agreement = r.agreement();
  const double per_image = r.seconds_per_image();
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
  const nn::WeightForms& forms = evaluation.server().weight_forms();
  if (forms.all_ntt_bytes > 0)
    std::printf("  weights              %s\n", describe_weight_forms(forms).c_str());
  std::printf("  stages (seconds over the run, precision in bits on the first %s):\n",
              plan.packing_mode().unit());
  for (std::size_t k = 0; k < net.stages.size(); ++k)
    std::printf("    %-46s %9.3f s  %5.1f bits\n", plan.stages[k].name.substr(0, 46).c_str(),
                stage_seconds[k], stage_bits[k]);

  if (!o.report.empty()) {
    nlohmann::json j = eval_report(o, net, ds, data_path, r.predictions, r.plain_predictions);
    j["params"] = {{"log_n", plan.params.log_n},
                   {"depth", plan.depth},
                   {"log_qp", plan.params.log_qp()},
                   {"scale_bits", std::log2(plan.params.scale)},
                   {"dnum", plan.params.dnum},
                   {"slots", plan.slots},
                   {"rotation_keys", plan.rotation_steps.size()},
                   {"secure_128", plan.params.is_128_bit_secure()}};
    j["max_logit_error"] = max_err;
    j["seconds_per_image"] = per_image;
    j["seconds"] = {{"keygen", t_keys}, {"encrypt", t_enc}, {"evaluate", t_eval}, {"decrypt", t_dec}};
    j["bytes"] = {{"evaluation_keys", key_bytes},
                  {"upload_per_evaluation", up_bytes},
                  {"download_per_evaluation", down_bytes}};
    if (forms.all_ntt_bytes > 0)
      j["weights"] = {{"ntt_bytes", forms.ntt_bytes},
                      {"coefficient_bytes", forms.coefficient_bytes},
                      {"all_ntt_bytes", forms.all_ntt_bytes},
                      {"stages_encoded_per_use", forms.encoded_per_use}};
    nlohmann::json stages = nlohmann::json::array();
    for (std::size_t k = 0; k < net.stages.size(); ++k)
      stages.push_back({{"name", plan.stages[k].name},
                        {"level_in", plan.stages[k].level_in},
                        {"level_out", plan.stages[k].level_out},
                        {"seconds", stage_seconds[k]},
                        {"precision_bits", std::isfinite(stage_bits[k]) ? stage_bits[k] : -1.0}});
    j["stages"] = stages;
    write_report(o.report, j);
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
  if (r.worst_excess > 1) {
    std::printf("record %zu: encrypted and plaintext logits disagree beyond the planned precision\n",
                r.worst);
    require_agreement(m, evaluation.server(), evaluation.keys(), evaluation.secret_key(),
                      records.inputs[r.worst], nn::evaluate(net, records.inputs[r.worst]), r.worst_logits);
  }
}

}  // namespace

nlohmann::json eval_report(const EvalOptions& o, const nn::Network& net, const data::Dataset& ds,
                           const std::string& data_path, const std::vector<int>& predictions,
                           const std::vector<int>& plain_predictions) {
  nlohmann::json j;
  j["model"] = net.name;
  j["dataset"] = ds.name;
  std::error_code ec;
  const auto rel = std::filesystem::relative(data_path, std::filesystem::current_path(), ec);
  const bool inside = !ec && !rel.empty() && rel.native().rfind("..", 0) != 0;
  j["data"] = inside ? rel.string() : data_path;
  j["mode"] = o.mode;
  j["count"] = ds.size();
  j["skip"] = o.skip;
  j["exact_only"] = o.exact_only;
  j["threads"] = num_threads();
  // Accuracy over every record: a record without a prediction (-1) counts as wrong.
  std::size_t correct = 0, correct_plain = 0, agree = 0;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    correct += predictions[i] == ds.labels[i];
    correct_plain += plain_predictions[i] == ds.labels[i];
    agree += predictions[i] == plain_predictions[i];
  }
  const double n = static_cast<double>(ds.size());
  j["plaintext_accuracy"] = static_cast<double>(correct_plain) / n;
  j["encrypted_accuracy"] = static_cast<double>(correct) / n;
  j["agreement"] = static_cast<double>(agree) / n;
  j["records"] = ds.source_index;
  j["labels"] = ds.labels;
  j["predictions"] = predictions;
  j["plaintext_predictions"] = plain_predictions;
  return j;
}

void write_report(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path);
  VEIL_CHECK_IO(f, "cannot write report '" << path << "'");
  f << j.dump(1) << "\n";
  VEIL_CHECK_IO(f.flush(), "cannot write report '" << path << "'");
  std::printf("report: %s\n", path.c_str());
}

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd =
      app.add_subcommand("eval", "encrypted inference over a test set, compared with the plaintext model");
  add_model_options(*cmd, o->model, o->mode);
  cmd->add_option("--data,-d", o->data,
                  "directory with IDX files (raw or .gz) or CIFAR-10 binary batches, or the files themselves "
                  "(default: where scripts/setup.sh puts the model's data set)");
  cmd->add_option("--count,-n", o->count,
                  "evaluate only the first K records (default: all; hybrid protocol runs: 100)");
  cmd->add_option("--skip", o->skip,
                  "start after the first K records (after --exact-only), so a long run can be split:\n"
                  "--skip 100 -n 100 evaluates records 100..199");
  cmd->add_flag("--exact-only", o->exact_only, "CIFAR-10: only records of the exact subset");
  cmd->add_flag("--simulate", o->simulate,
                "hybrid mode: run the protocol's fixed-point arithmetic in the clear instead of the\n"
                "protocol (same predictions up to truncation noise; whole test sets in seconds)");
  cmd->add_option("--report", o->report,
                  "write a JSON report here (accuracy, agreement, time and bytes, every prediction)");
  cmd->add_option("--plot", o->plot,
                  "write a PNG plot here: time and precision per stage; hybrid mode: time and bytes of\n"
                  "preprocessing and online stage per image");
  cmd->callback([o] {
    // Hybrid: each image runs the whole protocol (preprocessing included), so the default
    // is the first 100 records.
    if (o->mode == "hybrid") return run_hybrid_eval(*o);
    VEIL_REQUIRE(!o->simulate, "--simulate applies to --mode hybrid only");
    run_eval(*o);
  });
}

}  // namespace veil::cli
