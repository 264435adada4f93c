// The plan cache: a server that starts again on the same model keeps the plan it made
// before instead of searching its layouts again (cifar10-shallow: 1.6 s of a 5-10 s
// set-up), and the hybrid mode keeps its fixed-point program's decisions instead of
// calibrating again (~17 s of its set-up), as FFTW keeps "wisdom" between runs.
//
// A latency entry holds only a latency-mode plan's decisions (nn::PlanChoice: ring degree,
// scale, layouts); nn::plan_from_choice rebuilds the plan from them, fitting the chain
// again at 128-bit security and checking every layout against the network, so an entry
// can make a start faster but never a plan insecure or wrong. Entries are named by a
// BLAKE2b hash of everything the search depends on: this veil binary (a rebuild may plan
// differently), the model file's bytes, the --approximate specs, every plan option and
// the CPU's kernel level (the chain and the predictions differ between AVX2 and AVX-512).
// A damaged or unreadable entry is reported on stderr and planned afresh; an entry that
// cannot be written is reported once and the server goes on without it. An entry unused
// for 30 days is removed when another is written (a rebuilt veil names new ones). Nothing
// secret is kept: a plan holds no key and no weight, a hybrid entry only the share ring,
// the scales and the largest |value| the calibration images reached at each stage (what
// the hybrid plan report prints). An entry is protected against damage, not against
// someone who can write to the directory (who could as well replace veil): keep the
// directory as private as the binary.
#pragma once

#include <string>
#include <vector>

#include "veil/hybrid/program.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/network.hpp"

namespace veil::cli {

// The directory: `veil --plan-cache DIR`, else VEIL_PLAN_CACHE, else
// $XDG_CACHE_HOME/veil/plans, else $HOME/.cache/veil/plans; "off" (or an empty value, or
// no HOME) turns the cache off: "" is returned.
std::string plan_cache_dir();
void set_plan_cache_dir(const std::string& dir);

struct CachedPlan {
  nn::Plan plan;
  bool kept = false;  // rebuilt from the cache rather than searched
};

// make_plan(net, options), through the cache for modes with layouts. `model_path` and
// `approximations` name what `net` was lowered from (they enter the entry's name).
CachedPlan plan_with_cache(const std::string& model_path, const std::vector<std::string>& approximations,
                           const nn::Network& net, const nn::PlanOptions& options);

struct CachedProgram {
  hybrid::Program program;
  bool kept = false;  // rebuilt from the cache rather than chosen
};

// hybrid::lower(net, options), through the same cache: an entry keeps its ProgramChoice
// (share ring, scales, the calibration's measured bounds) and hybrid::lower_from_choice
// quantises the network again from it, with every truncation check of a fresh lowering.
// Its name also covers the calibration inputs' values.
CachedProgram program_with_cache(const std::string& model_path,
                                 const std::vector<std::string>& approximations, const nn::Network& net,
                                 const hybrid::ProgramOptions& options);

}  // namespace veil::cli
