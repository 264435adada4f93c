#include "veil/bfv/params.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/math/primes.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::bfv {

namespace {

constexpr int kMaxPrimeBits = 50;

long double log2l_of(long double x) { return std::log2(x); }

long double product(const std::vector<u64>& q, std::size_t count) {
  long double p = 1;
  for (std::size_t i = 0; i < count; ++i) p *= static_cast<long double>(q[i]);
  return p;
}

// The correctness condition of decryption modulo `modulus`: round(t (Q m / t + v) / Q) = m
// iff |t v / Q| < 1/2, i.e. 2 t |v| < Q.
bool decrypts(long double v, long double t, long double modulus) { return 2 * t * v < modulus; }

std::string capacity_problem(const BfvParameters& p) {
  const NoiseBounds nb = noise_bounds(p);
  const long double t = static_cast<long double>(p.t);
  const long double q = product(p.q, p.q.size());
  const long double qr = product(p.q, static_cast<std::size_t>(p.response_level) + 1);
  std::ostringstream err;
  if (!decrypts(nb.before_switch, t, q)) {
    err << "modulus too small for flooding: the flooded noise needs log2(Q) > "
        << std::ceil(log2l_of(2 * t * nb.before_switch)) << " bits (t = 2^" << std::log2(t) << ", L1 bound 2^"
        << std::log2(p.max_l1_norm) << ", s = " << p.flood_bits << "), log2(Q) is " << std::floor(log2l_of(q))
        << "; add primes, or lower t, the L1 bound or s";
    return err.str();
  }
  if (!decrypts(nb.after_switch, t, qr)) {
    err << "response modulus too small: after switching to level " << p.response_level
        << " the noise needs log2(Q') > " << std::ceil(log2l_of(2 * t * nb.after_switch))
        << " bits, log2(Q') is " << std::floor(log2l_of(qr)) << "; raise the response level";
    return err.str();
  }
  return {};
}

}  // namespace

u64 plaintext_prime(int bits, int log_n) {
  VEIL_REQUIRE(bits >= 2 && bits <= 60, "plaintext modulus size must be 2..60 bits, got " << bits);
  VEIL_REQUIRE(log_n >= 1 && log_n <= 17, "log_n must be 1..17, got " << log_n);
  VEIL_REQUIRE(bits > log_n + 1, "no " << bits << "-bit prime is 1 mod 2^" << (log_n + 1)
                                       << "; use more bits or a smaller ring degree");
  return math::generate_ntt_primes(bits, 1, std::uint64_t{2} << log_n)[0];
}

bool BfvParameters::batching() const { return t >= 3 && (t - 1) % (2 * n()) == 0 && math::is_prime(t); }

std::string BfvParameters::validate() const {
  if (!p.empty()) return "BFV parameters take no special primes (no key switching in ct x pt evaluation)";
  std::string why = rlwe::Parameters::validate();
  if (!why.empty()) return why;
  std::ostringstream err;
  if (t < 2 || t >= (u64{1} << 61)) {
    err << "plaintext modulus t = " << t << " outside [2, 2^61)";
    return err.str();
  }
  for (u64 qi : q) {
    if (qi == t) return "the plaintext modulus t equals a data prime; pick another t or other primes";
  }
  if (response_level < 0 || response_level > max_level()) {
    err << "response level " << response_level << " outside 0.." << max_level();
    return err.str();
  }
  if (!(max_l1_norm >= 1) || !std::isfinite(max_l1_norm) || max_l1_norm > 1e300) {
    err << "the plaintext L1 bound must be a finite number >= 1, got " << max_l1_norm;
    return err.str();
  }
  if (flood_bits < 40 || flood_bits > 512) {
    err << "flooding margin s = " << flood_bits
        << " bits is outside 40..512 (circuit privacy needs statistical distance 2^-s with s >= 40)";
    return err.str();
  }
  return capacity_problem(*this);
}

std::string BfvParameters::describe() const {
  std::ostringstream os;
  os << ", t = " << t << " (" << (64 - __builtin_clzll(t)) << " bits, "
     << (batching() ? "batching" : "coefficient encoding only") << "), L1 bound 2^" << std::log2(max_l1_norm)
     << ", s = " << flood_bits << ", responses at level " << response_level;
  return rlwe::Parameters::describe(os.str());
}

BfvParameters BfvParameters::create(int log_n, const std::vector<int>& q_bits, u64 t, int response_level,
                                    double max_l1_norm, int flood_bits, bool allow_insecure) {
  VEIL_REQUIRE(log_n >= 2 && log_n <= 17, "log_n must be in 2..17, got " << log_n);
  VEIL_REQUIRE(!q_bits.empty(), "need at least one data prime");
  BfvParameters prm;
  prm.log_n = log_n;
  prm.dnum = 1;
  prm.allow_insecure = allow_insecure;
  prm.t = t;
  prm.response_level = response_level;
  prm.max_l1_norm = max_l1_norm;
  prm.flood_bits = flood_bits;
  prm.q = math::generate_ntt_primes(q_bits, std::uint64_t{2} << log_n, {t});
  const std::string why = prm.validate();
  VEIL_REQUIRE(why.empty(), "invalid BFV parameters: " << why);
  return prm;
}

NoiseBounds noise_bounds(const BfvParameters& p) {
  NoiseBounds nb;
  const long double n = static_cast<long double>(p.n());
  const long double l1 = p.max_l1_norm;
  // The sampler rejects |x| > 6 sigma before rounding, so |e| <= round(6 sigma) = 19.
  const long double e = std::floor(6.0L * rlwe::kErrorSigma + 0.5L);
  // Noise is measured against the exact Q m / t; the message enters as round(Q m / t), one
  // more 1/2. Secret key: e + 1/2. Public key: e0 + u e + e1 s + 1/2 with u, s ternary
  // (||u||_1, ||s||_1 <= N).
  nb.fresh_sk = e + 0.5L;
  nb.fresh_pk = e * (2 * n + 1) + 0.5L;
  // sum_j (Q m_j / t + v_j) w_j + round(Q p / t) = Q [sum_j m_j w_j + p]_t / t
  //   + sum_j v_j w_j + 1/2 (mod Q): the multiples of t in the integer message vanish
  // (Q k = 0 mod Q), so only the inputs' noise times L remains, plus the plaintext's
  // rounding.
  nb.evaluation = l1 * nb.fresh_pk + 0.5L;
  nb.flood_log2 = static_cast<int>(std::ceil(std::log2(nb.evaluation))) + p.flood_bits;
  // Plus the re-randomising public-key encryption of zero (no message, no rounding).
  nb.before_switch = nb.evaluation + e * (2 * n + 1) + std::ldexp(1.0L, nb.flood_log2);
  // Each dropped prime q: x' = round(x / q) = Q' m / t + v / q + (rounding of c0 + c1 s,
  // at most (1 + ||s||_1) / 2); summed over the drops (each q >= 2^20) below N + 1.
  long double ratio = 1;
  for (std::size_t i = static_cast<std::size_t>(p.response_level) + 1; i < p.q.size(); ++i)
    ratio /= static_cast<long double>(p.q[i]);
  nb.after_switch =
      nb.before_switch * ratio + (p.response_level + 1 < static_cast<int>(p.q.size()) ? n + 1 : 0);
  return nb;
}

BfvParameters select_parameters(const ParameterRequest& r) {
  VEIL_REQUIRE(r.flood_bits >= 40,
               "flooding margin s = " << r.flood_bits << " is below 40 bits: circuit privacy needs s >= 40");
  VEIL_REQUIRE(r.flood_bits <= 512, "flooding margin s = " << r.flood_bits << " exceeds 512 bits");
  VEIL_REQUIRE(r.max_l1_norm == 0 || (r.max_l1_norm >= 1 && std::isfinite(r.max_l1_norm)),
               "the plaintext L1 bound must be >= 1 (or 0 for arbitrary plaintexts), got " << r.max_l1_norm);
  VEIL_REQUIRE(r.min_log_n >= 12 && r.max_log_n <= 17 && r.min_log_n <= r.max_log_n,
               "ring degrees 2^" << r.min_log_n << "..2^" << r.max_log_n
                                 << " requested; the 128-bit table covers 2^12..2^17");
  u64 t = r.t;
  if (t == 0) {
    VEIL_REQUIRE(r.t_bits >= 2 && r.t_bits <= 60,
                 "plaintext modulus size must be 2..60 bits, got " << r.t_bits);
    // Coefficient encoding works with any t; a prime keeps the choice uniform.
    t = plaintext_prime(r.t_bits, r.batching ? 16 : 1);
  }
  VEIL_REQUIRE(t >= 2 && t < (u64{1} << 61), "plaintext modulus t = " << t << " outside [2, 2^61)");
  std::ostringstream tried;
  for (int log_n = r.min_log_n; log_n <= r.max_log_n; ++log_n) {
    const std::uint64_t n = std::uint64_t{1} << log_n;
    if (r.batching && !(math::is_prime(t) && (t - 1) % (2 * n) == 0)) {
      tried << " N = 2^" << log_n << ": t is not 1 mod 2N (no batching);";
      continue;
    }
    BfvParameters prm;
    prm.log_n = log_n;
    prm.dnum = 1;
    prm.t = t;
    prm.flood_bits = r.flood_bits;
    prm.max_l1_norm =
        r.max_l1_norm == 0 ? static_cast<double>(n) * static_cast<double>(t) / 2 : r.max_l1_norm;
    const int budget = *rlwe::max_log_qp_128(log_n);
    // Sizes from the bounds: Q' holds the switched noise (assuming the flood is at most Q'/4t
    // after the switch), Q the flood itself; a bit of slack for primes just below 2^bits.
    prm.q = {1};
    const NoiseBounds nb = noise_bounds(prm);
    const long double tl = static_cast<long double>(t);
    const int need_resp =
        static_cast<int>(std::ceil(std::log2(4 * tl * (static_cast<long double>(n) + 1)))) + 1;
    const int need_total = static_cast<int>(std::ceil(std::log2(4 * tl * nb.before_switch))) + 1;
    bool done = false;
    for (int slack = 0; slack < 4 && !done; ++slack) {
      const int min_bits = log_n + 3;
      auto split = [&](int bits) {
        std::vector<int> out;
        if (bits <= 0) return out;
        const int k = (bits + kMaxPrimeBits - 1) / kMaxPrimeBits;
        const int each = std::max(min_bits, (bits + k - 1) / k);
        out.assign(static_cast<std::size_t>(k), each);
        return out;
      };
      auto resp = split(need_resp + slack);
      int resp_bits = 0;
      for (int b : resp) resp_bits += b;
      auto rest = split(need_total + slack - resp_bits);
      std::vector<int> bits = resp;
      bits.insert(bits.end(), rest.begin(), rest.end());
      int total = 0;
      for (int b : bits) total += b;
      if (total > budget) break;
      try {
        prm.q = math::generate_ntt_primes(bits, 2 * n, {t});
      } catch (const std::invalid_argument&) {
        break;
      }
      prm.response_level = static_cast<int>(resp.size()) - 1;
      if (prm.validate().empty()) done = true;
    }
    if (done) return prm;
    tried << " N = 2^" << log_n << ": needs about " << need_total << " bits of Q, the 128-bit bound is "
          << budget << ";";
  }
  std::ostringstream why;
  why << "no 128-bit BFV parameters for t = " << t << ", L1 bound "
      << (r.max_l1_norm == 0 ? std::string("N t / 2") : std::to_string(r.max_l1_norm))
      << ", s = " << r.flood_bits << ":" << tried.str()
      << " lower t, the L1 bound or s, or allow a larger ring";
  detail::throw_invalid(__FILE__, __LINE__, why.str());
}

}  // namespace veil::bfv
