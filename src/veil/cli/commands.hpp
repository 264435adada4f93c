// Subcommands of `veil`; each registers its options on the CLI11 app and runs.
#pragma once

#include <CLI/CLI.hpp>

#include "veil/cli/session.hpp"
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

// --mode hybrid (cli/hybrid.cpp): the model lowered to the hybrid program, its scales
// chosen on calibration images from the installed data set.
struct HybridModel {
  nn::Graph graph;
  nn::Network network;
  hybrid::Program program;
  std::string calibration;  // what chose the scales, for reports
};
HybridModel load_hybrid_model(const ModelOptions& o);
void print_hybrid_plan(const HybridModel& m);
// Both parties in this process over the in-memory channel; fails (non-zero exit) when a
// prediction differs from the plaintext model's.
void run_hybrid_infer(const ModelOptions& o, const std::vector<std::string>& inputs, std::size_t index,
                      int top);
// simulate: the protocol's fixed-point arithmetic in the clear (fast, whole test sets).
void run_hybrid_eval(const ModelOptions& o, const std::string& data, std::size_t count, bool quiet,
                     bool simulate);

void register_plan(CLI::App& app);
void register_key_commands(CLI::App& app);  // keygen, encrypt, run, decrypt
void register_infer(CLI::App& app);
void register_eval(CLI::App& app);
void register_serve(CLI::App& app);   // serve, over TCP
void register_client(CLI::App& app);  // client and load generator, over TCP

}  // namespace veil::cli
