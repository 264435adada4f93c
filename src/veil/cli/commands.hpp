// Subcommands of `veil`; each registers its options on the CLI11 app and runs.
#pragma once

#include <CLI/CLI.hpp>

#include "veil/cli/session.hpp"

namespace veil::cli {

// Options every model-using command takes (--model, --approximate, --mode, ...).
void add_model_options(CLI::App& cmd, ModelOptions& o, std::string& mode);
// Applies --mode and returns the loaded model, printing what was done when `verbose`.
Model open_model(ModelOptions& o, const std::string& mode);

// Prints the predicted class and the top scores with class names.
void print_result(const Model& m, const std::vector<double>& logits, int top);

void register_plan(CLI::App& app);
void register_key_commands(CLI::App& app);  // keygen, encrypt, run, decrypt
void register_infer(CLI::App& app);
void register_eval(CLI::App& app);
void register_serve(CLI::App& app);   // serve, over TCP
void register_client(CLI::App& app);  // client and load generator, over TCP

}  // namespace veil::cli
