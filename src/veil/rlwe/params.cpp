#include "veil/rlwe/params.hpp"

#include <cmath>
#include <set>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/math/primes.hpp"

namespace veil::rlwe {

std::optional<int> max_log_qp_128(int log_n) {
  switch (log_n) {
    case 12:
      return 106;
    case 13:
      return 214;
    case 14:
      return 430;
    case 15:
      return 868;
    case 16:
      return 1747;
    case 17:
      return 3523;
    default:
      return std::nullopt;
  }
}

namespace {
double sum_log2(const std::vector<std::uint64_t>& v) {
  double s = 0;
  for (auto x : v) s += std::log2(static_cast<double>(x));
  return s;
}
}  // namespace

int key_switch_digit_size(std::size_t num_q, int dnum) {
  return static_cast<int>((num_q + static_cast<std::size_t>(dnum) - 1) / static_cast<std::size_t>(dnum));
}

double Parameters::log_q() const { return sum_log2(q); }
double Parameters::log_qp() const { return sum_log2(q) + sum_log2(p); }

bool Parameters::is_128_bit_secure() const {
  auto bound = max_log_qp_128(log_n);
  // The guideline tables bound the bit length of QP; compare the ceiling.
  return bound && std::ceil(log_qp()) <= *bound;
}

std::string Parameters::validate() const {
  std::ostringstream err;
  if (log_n < 2 || log_n > 17) {
    err << "log_n must be in 2..17 (ring degree 2^2 .. 2^17), got " << log_n;
    return err.str();
  }
  if (q.empty()) return "no data primes (q) given";
  // No special primes is allowed: a scheme without key switching (BFV for the hybrid mode,
  // ct x pt only) spends the whole 128-bit budget on Q. Schemes that need key switching
  // refuse it themselves (CkksParameters::validate).
  if (q.size() > 64 || p.size() > 64) return "at most 64 data and 64 special primes are supported";
  if (dnum < 1 || dnum > static_cast<int>(q.size())) {
    err << "dnum must be in 1.." << q.size() << " (number of data primes), got " << dnum;
    return err.str();
  }
  const std::uint64_t two_n = 2 * n();
  std::set<std::uint64_t> seen;
  for (const auto* list : {&q, &p}) {
    for (auto x : *list) {
      if (x < 3 || x >= (std::uint64_t{1} << 61)) {
        err << "prime " << x << " outside [3, 2^61)";
        return err.str();
      }
      if ((x - 1) % two_n != 0) {
        err << "prime " << x << " is not 1 mod 2N = " << two_n << " (not NTT-friendly)";
        return err.str();
      }
      if (!math::is_prime(x)) {
        err << x << " is not prime";
        return err.str();
      }
      if (!seen.insert(x).second) {
        err << "prime " << x << " appears twice";
        return err.str();
      }
    }
  }
  if (!allow_insecure) {
    auto bound = max_log_qp_128(log_n);
    if (!bound) {
      err << "ring degree 2^" << log_n
          << " has no 128-bit security bound (supported: 2^12..2^17); insecure parameters need an explicit "
             "opt-in";
      return err.str();
    }
    if (std::ceil(log_qp()) > *bound) {
      err << "log2(QP) = " << std::ceil(log_qp()) << " bits exceeds the 128-bit bound of " << *bound
          << " bits for N = 2^" << log_n
          << " (HE Security Guidelines, ia.cr/2024/463, ternary secret); use fewer or smaller primes, a "
             "larger N, "
             "or an explicit insecure opt-in for tests";
      return err.str();
    }
  }
  if (!p.empty()) {
    // Hybrid key switching divides digit-sized noise by P: a digit much larger than P
    // leaves noise of size Q_j/P in every relinearisation and rotation, which silently
    // destroys the result. Refuse sets where that loses more than ~20 bits.
    const auto alpha = static_cast<std::size_t>(key_switch_digit_size(q.size(), dnum));
    double worst = 0;
    for (std::size_t b = 0; b < q.size(); b += alpha) {
      double digit = 0;
      for (std::size_t i = b; i < std::min(q.size(), b + alpha); ++i)
        digit += std::log2(static_cast<double>(q[i]));
      worst = std::max(worst, digit);
    }
    const double log_p = sum_log2(p);
    if (worst > log_p + 20) {
      err << "special primes too small for key switching: the largest digit has " << std::lround(worst)
          << " bits but log2(P) = " << std::lround(log_p) << "; raise dnum or add special primes";
      return err.str();
    }
  }
  return {};
}

Parameters Parameters::create(int log_n, const std::vector<int>& q_bits, const std::vector<int>& p_bits,
                              int dnum, bool allow_insecure) {
  VEIL_REQUIRE(log_n >= 2 && log_n <= 17, "log_n must be in 2..17, got " << log_n);
  VEIL_REQUIRE(!q_bits.empty(), "need at least one data prime");
  Parameters prm;
  prm.log_n = log_n;
  prm.dnum = dnum;
  prm.allow_insecure = allow_insecure;
  const std::uint64_t two_n = std::uint64_t{2} << log_n;
  // Base prime and special primes first, so the data primes around 2^scale_bits can be
  // picked from what remains (CKKS picks the scale among them).
  std::vector<std::uint64_t> taken;
  std::vector<int> middle(q_bits.begin() + 1, q_bits.end());
  auto specials = p_bits.empty() ? std::vector<std::uint64_t>{} : math::generate_ntt_primes(p_bits, two_n);
  taken = specials;
  auto base = math::generate_ntt_primes(q_bits[0], 1, two_n, taken);
  taken.push_back(base[0]);
  auto mids = math::generate_ntt_primes(middle, two_n, taken);
  prm.q.push_back(base[0]);
  prm.q.insert(prm.q.end(), mids.begin(), mids.end());
  prm.p = specials;
  std::string why = prm.validate();
  VEIL_REQUIRE(why.empty(), "invalid RLWE parameters: " << why);
  return prm;
}

std::string Parameters::describe(const std::string& scheme_fields) const {
  std::ostringstream os;
  os << "N = 2^" << log_n << ", " << q.size() << " data primes (log Q = " << std::lround(log_q()) << "), "
     << p.size() << " special primes (log QP = " << std::lround(log_qp()) << "), dnum = " << dnum
     << scheme_fields;
  auto bound = max_log_qp_128(log_n);
  if (bound) {
    os << ", 128-bit bound " << *bound << ": " << (is_128_bit_secure() ? "met" : "EXCEEDED");
  } else {
    os << ", no 128-bit bound for this N";
  }
  return os.str();
}

}  // namespace veil::rlwe
