// CKKS context: the RLWE context (rlwe/context.hpp: NTT tables, key-switching and
// rescaling precomputation, automorphisms) plus the CKKS parameters (scale) and slots.
#pragma once

#include <memory>

#include "veil/ckks/params.hpp"
#include "veil/rlwe/context.hpp"

namespace veil::ckks {

using math::u64;

class CkksContext : public rlwe::Context {
 public:
  explicit CkksContext(CkksParameters params);
  static std::shared_ptr<const CkksContext> create(const CkksParameters& params) {
    return std::make_shared<const CkksContext>(params);
  }

  const CkksParameters& params() const { return ckks_params_; }
  std::size_t max_slots() const { return n() / 2; }

 private:
  CkksParameters ckks_params_;
};

using ContextPtr = std::shared_ptr<const CkksContext>;

}  // namespace veil::ckks
