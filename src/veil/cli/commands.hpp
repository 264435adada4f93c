// Subcommands of `veil`; each registers its options on the CLI11 app and runs.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "veil/cli/session.hpp"
#include "veil/data/dataset.hpp"
#include "veil/hybrid/program.hpp"

namespace veil::cli {

// --mode values: the packing modes (nn::packing_modes()), then hybrid.
std::vector<std::string> mode_names();
// Options every model-using command takes (--model, --approximate, --mode, ...).
void add_model_options(CLI::App& cmd, ModelOptions& o, std::string& mode);
// Applies --mode and returns the loaded model, printing what was done when `verbose`.
Model open_model(ModelOptions& o, const std::string& mode);

// Prints the predicted class and the top scores with class names.
void print_result(const Model& m, const std::vector<double>& logits, int top);
void print_result(const std::vector<std::string>& classes, const std::vector<double>& logits, int top);

// --mode hybrid (cli/hybrid.cpp): the model lowered to the hybrid program, its scales
// chosen on calibration images from the installed data set.
struct HybridModel {
  nn::Graph graph;  // empty unless asked for (load_hybrid_model's keep_graph)
  // Lowered and merged (hybrid::merge_linear_runs): the model's function, the program's
  // stages one for one, so that lowering it makes no copy of its weights.
  nn::Network network;
  // Shared with the server model: a large model's weights are held once.
  std::shared_ptr<const hybrid::Program> program;
  std::string calibration;    // what chose the scales, for reports
  bool program_kept = false;  // rebuilt from the plan cache's choice (cli/plan_cache.hpp)
};
// keep_graph: keep the imported graph (the plan report compares with it); otherwise it is
// freed once lowered.
HybridModel load_hybrid_model(const ModelOptions& o, bool keep_graph = false);
void print_hybrid_plan(const HybridModel& m);
// Both parties in this process over the in-memory channel; fails (non-zero exit) when a
// prediction differs from the plaintext model's.
void run_hybrid_infer(const ModelOptions& o, const std::vector<std::string>& inputs, std::size_t index,
                      int top);

// `veil eval` in every mode.
struct EvalOptions {
  ModelOptions model;
  std::string mode = "latency";
  std::string data;
  std::size_t count = 0;  // 0: all (hybrid protocol runs: the first 100)
  std::size_t skip = 0;   // records dropped first, to split a long run
  bool exact_only = false;
  std::string report, plot;
  bool quiet = false;
  bool simulate = false;  // hybrid: the protocol's fixed-point arithmetic in the clear
};
// What every eval report holds: the model, the records (data path relative to the
// working directory where possible, so reports kept in the repository name no one
// machine's folders), their labels, the predictions both ways and the accuracies.
nlohmann::json eval_report(const EvalOptions& o, const nn::Network& net, const data::Dataset& ds,
                           const std::string& data_path, const std::vector<int>& predictions,
                           const std::vector<int>& plain_predictions);
void write_report(const std::string& path, const nlohmann::json& j);
void run_hybrid_eval(const EvalOptions& o);

void register_plan(CLI::App& app);
void register_key_commands(CLI::App& app);  // keygen, encrypt, run, decrypt
void register_infer(CLI::App& app);
void register_eval(CLI::App& app);
void register_serve(CLI::App& app);   // serve, over TCP
void register_client(CLI::App& app);  // client and load generator, over TCP

}  // namespace veil::cli
