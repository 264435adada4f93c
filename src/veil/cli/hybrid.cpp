// `--mode hybrid` of `veil plan`, `veil infer` and `veil eval`: the hybrid protocol with
// both parties in this process over the in-memory channel pair (the same code runs over
// TCP): preprocessing under the exact scheme, then the online stage on shares, with the
// time, bytes and rounds of each stage and the comparison with the plaintext network.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "veil/cli/commands.hpp"
#include "veil/cli/data_paths.hpp"
#include "veil/cli/plan_cache.hpp"
#include "veil/common/error.hpp"
#include "veil/common/memory.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/data/dataset.hpp"
#include "veil/eval/hybrid_eval.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/report/plot.hpp"
#include "veil/report/progress.hpp"

namespace veil::cli {

namespace fs = std::filesystem;

namespace {

// Record i of a data set, normalised as the model expects.
std::vector<double> record(const nn::Network& net, const data::Dataset& ds, std::size_t i) {
  const auto px = ds.pixels(i);
  return nn::normalize(net, std::vector<std::uint8_t>(px.begin(), px.end()));
}

// Images that choose the fixed-point scales: --calibration, else the first 64 training
// images when the model's data set is installed, else its first 64 test images (with a
// warning: accuracy measured on those images is then not held out), else none (bounds
// from the measured activation ranges and interval propagation alone).
std::vector<std::vector<double>> calibration_inputs(const nn::Network& net, const std::string& given,
                                                    std::string* source) {
  std::vector<std::vector<double>> out;
  if (!given.empty()) {
    // Given by the user: its errors are the user's to see.
    const data::Dataset ds = data::load_dataset(given, "", 64);
    VEIL_REQUIRE(ds.channels == net.input.c && ds.height == net.input.h && ds.width == net.input.w,
                 "calibration images in '" << given << "' are " << ds.channels << "x" << ds.height << "x"
                                           << ds.width << "; the model takes " << net.input.c << "x"
                                           << net.input.h << "x" << net.input.w);
    for (std::size_t i = 0; i < ds.size(); ++i) out.push_back(record(net, ds, i));
    *source = std::to_string(ds.size()) + " images of " + given;
    return out;
  }
  if (net.dataset.empty()) return out;
  const std::string dir = default_data_dir(net.dataset);
  std::vector<std::string> candidates = training_files(dir);
  if (fs::exists(dir)) candidates.push_back(dir);
  for (const auto& path : candidates) {
    try {
      const data::Dataset ds = data::load_dataset(path, net.dataset, 64);
      for (std::size_t i = 0; i < ds.size(); ++i) out.push_back(record(net, ds, i));
      *source = std::to_string(ds.size()) +
                (path == dir ? " test images of " + path +
                                   " (no training images there: results on these images are not held out)"
                             : " images of " + path);
      return out;
    } catch (const std::exception&) {
      // Not this one: try the next location.
    }
  }
  return out;
}

}  // namespace

HybridModel load_hybrid_model(const ModelOptions& o, bool keep_graph) {
  nn::ImportOptions io;
  for (const auto& a : o.approximate) io.approximations.push_back(nn::parse_approx_spec(a));
  HybridModel m;
  m.graph = nn::load_onnx(o.path, io);
  m.network = hybrid::merge_linear_runs(nn::lower(m.graph, hybrid::lower_options()));
  if (!keep_graph) m.graph = nn::Graph{};
  hybrid::ProgramOptions po;
  po.ring = o.share_ring == "one"   ? hybrid::ShareRing::kOnePrime
            : o.share_ring == "two" ? hybrid::ShareRing::kTwoPrimes
                                    : hybrid::ShareRing::kAuto;
  std::string source = "none (no data set installed: measured ranges and interval bounds)";
  po.calibration = calibration_inputs(m.network, o.calibration, &source);
  m.calibration = source;
  CachedProgram kept = [&] {
    const ReuseLargeBlocks reuse;  // the scale search's candidates, each a copy of every weight
    return program_with_cache(o.path, o.approximate, m.network, po);
  }();
  m.program = std::make_shared<const hybrid::Program>(std::move(kept.program));
  m.program_kept = kept.kept;
  if (m.program_kept) m.calibration += " (choice kept from an earlier run: --plan-cache off chooses again)";
  return m;
}

void print_hybrid_plan(const HybridModel& m) {
  const auto& prog = *m.program;
  const hybrid::ProgramCost c = hybrid::cost(prog);
  std::printf("model %s (%s, input %dx%dx%d), hybrid mode\n", m.network.name.c_str(),
              m.network.dataset.c_str(), m.network.input.c, m.network.input.h, m.network.input.w);
  std::printf("fixed-point scales chosen on: %s\n", m.calibration.c_str());
  std::printf("share ring: %s\n", prog.ring_choice.c_str());
  std::printf("%s", hybrid::describe(prog).c_str());
  const nn::Network unmerged = nn::lower(m.graph, nn::LowerOptions::none());
  int linear_before = 0, linear_after = 0;
  for (const auto& s : unmerged.stages) linear_before += s.is<nn::LinearStage>();
  for (const auto& op : prog.ops) linear_after += op.kind == hybrid::Op::Kind::kLinear;
  std::printf(
      "merging: %d linear layers -> %d (each costs one masked input, one truncation, one\n"
      "preprocessing exchange)\n",
      linear_before, linear_after);
  std::printf(
      "online per image: %d rounds, %lld integer multiply-adds on the server, %lld squares, %lld triples\n",
      c.rounds, static_cast<long long>(c.linear_macs), static_cast<long long>(c.squares),
      static_cast<long long>(c.triples));
  const hybrid::HeParameters hp = hybrid::he_parameters(prog);
  const hybrid::PreprocessCost pc = hybrid::preprocess_cost(prog, hp);
  std::printf(
      "preprocessing per image, linear layers: %zu ciphertexts up, %zu down, %zu ciphertext x plaintext "
      "products; the server's kernel blocks: %s ready in NTT form (--plaintext-cache-gib)\n",
      pc.ciphertexts_up, pc.ciphertexts_down, pc.products, human_bytes(pc.block_bytes).c_str());
  for (int r = 0; r < hp.residues(); ++r) {
    const std::string which = hp.residues() == 1 ? "" : " (t = p" + std::to_string(r) + ")";
    std::printf("exact scheme, linear layers%s: %s\n", which.c_str(),
                hp.linear_of(r)->params().describe().c_str());
    std::printf("exact scheme, Beaver products%s: %s\n", which.c_str(),
                hp.beaver_of(r)->params().describe().c_str());
  }
}

void run_hybrid_infer(const ModelOptions& o, const std::vector<std::string>& inputs, std::size_t index,
                      int top) {
  auto t = Clock::now();
  HybridModel m = load_hybrid_model(o);
  std::printf(
      "model %s: hybrid mode, values in Z_p (p %d bits), %d online rounds, %d threads, program %.2f s\n",
      m.network.name.c_str(), static_cast<int>(m.program->field().log2_modulus()) + 1,
      hybrid::cost(*m.program).rounds, num_threads(), seconds_since(t));
  // The plaintext model's answers first: then its weights go, and their memory (5.8 GB for
  // a PreAct-ResNet-18, with what the set-up freed) is left to the server's kernel blocks.
  std::vector<Input> ins;
  std::vector<std::vector<double>> plains;
  for (const auto& path : inputs) {
    ins.push_back(load_input(m.network, path, index));
    plains.push_back(nn::evaluate(m.network, ins.back().values));
  }
  m.network.drop_linear_weights();
  release_free_memory();
  eval::HybridSession session(m.program, hybrid_cache_bytes());
  std::printf(
      "server setup (weights encoded for preprocessing): %.2f s, %s; client keys: %.2f s, %s sent once\n",
      session.server_setup_s(), describe_hybrid_weights(session.server_model()).c_str(), session.keys_s(),
      human_bytes(session.key_bytes()).c_str());
  for (std::size_t i = 0; i < ins.size(); ++i) {
    const Input& in = ins[i];
    eval::HybridStats st;
    const auto logits = session.infer(in.values, st);
    const auto& plain = plains[i];
    double err = 0;
    for (std::size_t k = 0; k < plain.size(); ++k) err = std::max(err, std::abs(plain[k] - logits[k]));
    std::printf("\n%s%s\n", in.label.c_str(),
                in.true_class >= 0 ? (" (label " + std::to_string(in.true_class) + ")").c_str() : "");
    print_result(m.network.classes, logits, top);
    std::printf("plaintext model: class %d, max |hybrid - plaintext| logit %.3f\n", argmax(plain), err);
    std::printf("time: preprocessing %.3f s (input-independent) + online %.4f s = %.3f s\n", st.preprocess_s,
                st.online_s, st.preprocess_s + st.online_s);
    std::printf("bytes: preprocessing %s up, %s down; online %s up, %s down in %d rounds\n",
                human_bytes(st.pre_up).c_str(), human_bytes(st.pre_down).c_str(),
                human_bytes(st.online_up).c_str(), human_bytes(st.online_down).c_str(), st.online_rounds);
    VEIL_CHECK_IO(argmax(plain) == argmax(logits),
                  "the hybrid evaluation predicts class "
                      << argmax(logits) << " where the plaintext model predicts " << argmax(plain)
                      << " (max logit error " << err
                      << "): the fixed-point scales are too coarse for this input");
  }
}

namespace {

// eval_report plus what a hybrid run adds: how the program was made, the logit error.
nlohmann::json hybrid_report(const EvalOptions& o, const HybridModel& m, const data::Dataset& ds,
                             const std::string& data_path, const std::vector<int>& predictions,
                             const std::vector<int>& plain, double max_logit_error, bool simulated) {
  nlohmann::json j = eval_report(o, m.network, ds, data_path, predictions, plain);
  j["simulated"] = simulated;
  j["share_ring_primes"] = m.program->primes().size();
  j["calibration"] = m.calibration;
  j["max_logit_error"] = max_logit_error;
  return j;
}

// The clear fixed-point computation the protocol reproduces (hybrid::evaluate_fixed; the
// two-party run differs by the local truncations' one-unit errors), on both cores: the
// accuracy the hybrid mode will have, over a whole test set in seconds.
void simulate_eval(const EvalOptions& o, const HybridModel& m, const data::Dataset& ds,
                   const std::string& data_path) {
  const auto& net = m.network;
  std::vector<int> fixed(ds.size()), plain(ds.size());
  std::vector<double> err(ds.size());
  std::optional<report::Progress> bar;
  if (!o.quiet) bar.emplace("simulate", ds.size());
  std::mutex mu;
  parallel_for(ds.size(), [&](std::size_t i) {
    const auto x = record(net, ds, i);
    const auto a = hybrid::evaluate_fixed(*m.program, x);
    const auto b = nn::evaluate(net, x);
    fixed[i] = argmax(a), plain[i] = argmax(b);
    for (std::size_t k = 0; k < a.size(); ++k) err[i] = std::max(err[i], std::abs(a[k] - b[k]));
    std::lock_guard<std::mutex> lk(mu);
    if (bar) bar->tick();
  });
  if (bar) bar->finish();
  std::size_t agree = 0, correct = 0, correct_plain = 0;
  double worst = 0;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    agree += fixed[i] == plain[i];
    correct += fixed[i] == ds.labels[i];
    correct_plain += plain[i] == ds.labels[i];
    worst = std::max(worst, err[i]);
  }
  const double n = static_cast<double>(ds.size());
  std::printf("simulated (the protocol's fixed-point arithmetic in the clear, no encryption or shares):\n");
  std::printf(
      "accuracy: hybrid %.2f%%, plaintext %.2f%%; predictions agree on %zu/%zu (%.2f%%); max logit error "
      "%.3f\n",
      100.0 * correct / n, 100.0 * correct_plain / n, agree, ds.size(), 100.0 * agree / n, worst);
  if (!o.report.empty())
    write_report(o.report, hybrid_report(o, m, ds, data_path, fixed, plain, worst, true));
}

// Time and bytes per image of each stage, the preprocessing/online split at a glance.
void plot_hybrid(const std::string& path, const eval::HybridReport& r) {
  const double n = static_cast<double>(r.count);
  const auto& t = r.total;
  report::BarPanel time, bytes;
  time.title = "Time per image (hybrid mode, " + std::to_string(r.count) + " images)";
  time.y_label = "seconds";
  time.labels = {"preprocessing", "online"};
  time.values = {t.preprocess_s / n, t.online_s / n};
  bytes.title = "Bytes per image";
  bytes.y_label = "MiB";
  bytes.labels = {"preprocessing up", "preprocessing down", "online up", "online down"};
  for (const std::uint64_t b : {t.pre_up, t.pre_down, t.online_up, t.online_down})
    bytes.values.push_back(static_cast<double>(b) / n / (1 << 20));
  report::write_panels_png(path, {time, bytes});
  std::printf("plot: %s\n", path.c_str());
}

}  // namespace

void run_hybrid_eval(const EvalOptions& o) {
  VEIL_REQUIRE(o.plot.empty() || !o.simulate,
               "--plot shows the protocol's time and bytes, which a --simulate run does not have: drop one "
               "of the two");
  HybridModel m = load_hybrid_model(o.model);
  const auto& net = m.network;
  data::LoadOptions lo;
  lo.max_count = o.count == 0 && !o.simulate ? 100 : o.count;
  lo.skip = o.skip;
  lo.exact_only = o.exact_only;
  lo.num_classes = net.num_outputs();
  const std::string data_path = o.data.empty() ? default_data_dir(net.dataset) : o.data;
  const data::Dataset ds = data::load_dataset(data_path, net.dataset, lo);
  VEIL_REQUIRE(ds.size() > 0, "no records in '" << data_path << "'");
  std::printf("eval %s on %zu %s records from %s (hybrid mode, %d threads; scales chosen on %s)\n",
              net.name.c_str(), ds.size(), ds.name.c_str(), data_path.c_str(), num_threads(),
              m.calibration.c_str());
  if (o.simulate) return simulate_eval(o, m, ds, data_path);
  eval::Records records;
  for (std::size_t i = 0; i < ds.size(); ++i) {
    records.inputs.push_back(record(net, ds, i));
    records.labels.push_back(ds.labels[i]);
  }
  // The plaintext model on every record first (both cores); then its weights go, and their
  // memory is left to the server's kernel blocks.
  std::vector<std::vector<double>> plain(records.size());
  {
    std::optional<report::Progress> pbar;
    if (!o.quiet) pbar.emplace("plaintext", records.size());
    std::mutex mu;
    parallel_for(records.size(), [&](std::size_t i) {
      plain[i] = nn::evaluate(net, records.inputs[i]);
      std::lock_guard<std::mutex> lk(mu);
      if (pbar) pbar->tick();
    });
    if (pbar) pbar->finish();
  }
  m.network.drop_linear_weights();
  release_free_memory();
  std::optional<report::Progress> bar;
  if (!o.quiet) bar.emplace("hybrid", ds.size());
  const eval::HybridReport r = eval::run_hybrid(
      m.program, plain, records,
      [&](std::size_t, const std::string& summary) {
        if (!bar) return;
        bar->set_suffix(summary);
        bar->tick();
      },
      hybrid_cache_bytes());
  if (bar) bar->finish();
  const double n = static_cast<double>(ds.size());
  const auto& t = r.total;
  std::printf(
      "accuracy: hybrid %.2f%%, plaintext %.2f%%; predictions agree on %zu/%zu (%.2f%%); max logit error "
      "%.3f\n",
      100.0 * r.correct / n, 100.0 * r.correct_plain / n, r.agree, ds.size(), 100.0 * r.agree / n,
      r.max_logit_error);
  std::printf("refused by the client (logits out of the fixed-point range): %zu/%zu\n", r.refused, ds.size());
  std::printf("per image: preprocessing %.3f s, %s; online %.4f s, %s, %d rounds\n", t.preprocess_s / n,
              human_bytes(static_cast<std::uint64_t>(r.preprocess_bytes() / n)).c_str(), t.online_s / n,
              human_bytes(static_cast<std::uint64_t>(r.online_bytes() / n)).c_str(), t.online_rounds);
  if (!o.report.empty()) {
    nlohmann::json j =
        hybrid_report(o, m, ds, data_path, r.predictions, r.plain_predictions, r.max_logit_error, false);
    j["refused"] = r.refused;
    j["online_rounds"] = t.online_rounds;
    j["seconds_per_image"] = {{"preprocessing", t.preprocess_s / n}, {"online", t.online_s / n}};
    j["bytes_per_image"] = {{"preprocessing_up", t.pre_up / n},
                            {"preprocessing_down", t.pre_down / n},
                            {"online_up", t.online_up / n},
                            {"online_down", t.online_down / n}};
    write_report(o.report, j);
  }
  if (!o.plot.empty()) plot_hybrid(o.plot, r);
}

}  // namespace veil::cli
