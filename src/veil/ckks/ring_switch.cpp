#include "veil/ckks/ring_switch.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::ckks {

namespace {

int bits_of(std::uint64_t q) { return static_cast<int>(std::ceil(std::log2(static_cast<double>(q)))); }

}  // namespace

CkksParameters ring_switch_target(const CkksParameters& big, int level) {
  VEIL_REQUIRE(level >= 0 && level <= big.max_level(),
               "ring switch at level " << level << ": the chain has levels 0.." << big.max_level());
  VEIL_REQUIRE(big.log_n > 12 || big.allow_insecure,
               "no smaller ring than 2^" << big.log_n << " has a 128-bit bound");
  const int bound = rlwe::max_log_qp_128(big.log_n - 1).value_or(0);
  CkksParameters s;
  s.log_n = big.log_n - 1;
  s.scale = big.scale;
  s.allow_insecure = big.allow_insecure;
  s.scheme_id_words = big.scheme_id_words;
  s.q.assign(big.q.begin(), big.q.begin() + level + 1);
  int q_bits = 0;
  for (auto q : s.q) q_bits += bits_of(q);
  // Fewest digits first (smaller, faster keys), as the planner does for the large ring.
  for (int dnum = 1; dnum <= level + 1; ++dnum) {
    const auto alpha = static_cast<std::size_t>(rlwe::key_switch_digit_size(s.q.size(), dnum));
    int digit = 0;
    for (std::size_t b = 0; b < s.q.size(); b += alpha) {
      int d = 0;
      for (std::size_t i = b; i < std::min(s.q.size(), b + alpha); ++i) d += bits_of(s.q[i]);
      digit = std::max(digit, d);
    }
    std::vector<std::uint64_t> p;
    int p_bits = 0;
    for (std::size_t i = 0; i < big.p.size() && p_bits < digit; ++i) {
      p.push_back(big.p[i]);
      p_bits += bits_of(big.p[i]);
    }
    if (p_bits < digit) continue;
    if (q_bits + p_bits > bound && !big.allow_insecure) continue;
    s.p = std::move(p);
    s.dnum = dnum;
    const std::string why = s.validate();
    VEIL_REQUIRE(why.empty(), "small ring at level " << level << ": " << why);
    return s;
  }
  VEIL_REQUIRE(false, "no ring of degree 2^"
                          << big.log_n - 1 << " holds levels 0.." << level << " of this chain at 128-bit "
                          << "security (" << q_bits << " bits of data primes, bound " << bound
                          << " with the special primes); switch rings at a lower level");
}

RingSwitcher::RingSwitcher(ContextPtr big, ContextPtr small)
    : big_(std::move(big)),
      small_(std::move(small)),
      switching_(big_ && small_
                     ? rlwe::Context::create(rlwe::ring_switch_parameters(big_->params(), small_->params()))
                     : nullptr),
      switcher_(switching_) {}

rlwe::KeySwitchKey RingSwitcher::create_key(const rlwe::SecretKey& big_sk,
                                            const rlwe::SecretKey& small_sk) const {
  return rlwe::create_ring_switch_key(*big_, big_sk, switching_, *small_, small_sk);
}

Ciphertext RingSwitcher::apply(const Ciphertext& ct, const rlwe::KeySwitchKey& key) const {
  VEIL_REQUIRE(ct.param_id() == big_->param_id(),
               "ciphertext was made under other parameters than the large ring");
  VEIL_REQUIRE(ct.size() == 2, "ring switch a relinearised (size-2) ciphertext; got size " << ct.size());
  VEIL_REQUIRE(ct.level() <= small_->max_level(), "ring switch at level "
                                                      << ct.level() << ": the small ring holds "
                                                      << "levels up to " << small_->max_level()
                                                      << "; drop the ciphertext to it first");
  const std::size_t quarter = big_->n() / 4;
  const bool sparse = ct.slots() <= quarter;
  Ciphertext out(*small_, 2, ct.level(), sparse ? ct.scale() : ct.scale() / 2, sparse ? ct.slots() : quarter);
  rlwe::ring_switch(switcher_, *switching_, *small_, key, ct.poly(0), ct.poly(1), ct.level(), out.poly(0),
                    out.poly(1));
  return out;
}

}  // namespace veil::ckks
