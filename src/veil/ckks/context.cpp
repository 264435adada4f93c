#include "veil/ckks/context.hpp"

#include "veil/common/error.hpp"

namespace veil::ckks {

namespace {
// The CKKS checks (scale) run before the RLWE precomputation, with the CKKS wording.
const CkksParameters& validated(const CkksParameters& p) {
  std::string why = p.validate();
  VEIL_REQUIRE(why.empty(), "invalid CKKS parameters: " << why);
  return p;
}
}  // namespace

CkksContext::CkksContext(CkksParameters params)
    : rlwe::Context(validated(params)), ckks_params_(std::move(params)) {}

}  // namespace veil::ckks
