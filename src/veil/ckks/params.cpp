#include "veil/ckks/params.hpp"

#include <cmath>
#include <sstream>

#include "veil/common/error.hpp"

namespace veil::ckks {

std::string CkksParameters::validate() const {
  if (p.empty()) return "no special primes (p) given: hybrid key switching needs at least one";
  std::string why = rlwe::Parameters::validate();
  if (!why.empty()) return why;
  std::ostringstream err;
  if (!(scale >= 1.0) || !std::isfinite(scale)) {
    err << "scale must be a finite number >= 1, got " << scale;
    return err.str();
  }
  if (std::log2(scale) >= log_q()) return "scale exceeds the whole modulus Q";
  return {};
}

CkksParameters CkksParameters::create(int log_n, const std::vector<int>& q_bits,
                                      const std::vector<int>& p_bits, int scale_bits, int dnum,
                                      bool allow_insecure) {
  CkksParameters prm;
  try {
    static_cast<rlwe::Parameters&>(prm) =
        rlwe::Parameters::create(log_n, q_bits, p_bits, dnum, allow_insecure);
  } catch (const std::invalid_argument& e) {
    // Same message CKKS users always saw.
    std::string what = e.what();
    const std::string from = "invalid RLWE parameters", to = "invalid CKKS parameters";
    if (auto at = what.find(from); at != std::string::npos) what.replace(at, from.size(), to);
    throw std::invalid_argument(what);
  }
  prm.scale = std::ldexp(1.0, scale_bits);
  std::string why = prm.validate();
  VEIL_REQUIRE(why.empty(), "invalid CKKS parameters: " << why);
  return prm;
}

std::string CkksParameters::describe() const {
  std::ostringstream os;
  os << ", scale = 2^" << std::log2(scale);
  return rlwe::Parameters::describe(os.str());
}

}  // namespace veil::ckks
