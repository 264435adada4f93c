#include "veil/he/polynomial.hpp"

#include <bit>
#include <cmath>
#include <map>

#include "veil/common/error.hpp"

namespace veil::he {

using ckks::Ciphertext;

namespace {

std::vector<double> trimmed(std::vector<double> c) {
  while (c.size() > 1 && c.back() == 0.0) c.pop_back();
  return c;
}

int ceil_log2(int v) { return v <= 1 ? 0 : std::bit_width(static_cast<unsigned>(v - 1)); }

class PolyEvaluator {
 public:
  PolyEvaluator(const ckks::Evaluator& eval, const Ciphertext& x, const rlwe::RelinKeys& rk)
      : eval_(eval), rk_(rk) {
    powers_[1] = x;
  }

  // x^m for m a power of two, by repeated squaring.
  const Ciphertext& power(int m) {
    auto it = powers_.find(m);
    if (it != powers_.end()) return it->second;
    Ciphertext half = power(m / 2);
    eval_.multiply_relin_inplace(half, half, rk_);
    eval_.rescale_inplace(half);
    return powers_[m] = std::move(half);
  }

  // p(x) at whatever level and scale it naturally lands on (deg p >= 1).
  Ciphertext natural(const std::vector<double>& p) {
    const int d = static_cast<int>(p.size()) - 1;
    const Ciphertext& x = power(1);
    if (d == 1 && p[1] == 1.0) {
      Ciphertext r = x;
      if (p[0] != 0) eval_.add_const_inplace(r, p[0]);
      return r;
    }
    if (d == 1) {
      // c1 * x + c0 with the constant at scale q_level, so the rescale keeps x's scale.
      return at(p, x.level() - 1, x.scale());
    }
    const int m = std::bit_floor(static_cast<unsigned>(d));
    const std::vector<double> q(p.begin() + m, p.end());
    const std::vector<double> r(p.begin(), p.begin() + m);
    Ciphertext prod;
    if (q.size() == 1 && q[0] == 1.0) {
      prod = power(m);
    } else {
      Ciphertext qc = natural(q);
      Ciphertext xm = power(m);
      const int l = std::min(qc.level(), xm.level());
      eval_.drop_to_level_inplace(qc, l);
      eval_.drop_to_level_inplace(xm, l);
      eval_.multiply_relin_inplace(qc, xm, rk_);
      eval_.rescale_inplace(qc);
      prod = std::move(qc);
    }
    add_lower(prod, r);
    return prod;
  }

  // p(x) landing exactly at (level, scale); level must be below x's level by at least
  // the depth of p's non-constant part.
  Ciphertext at(const std::vector<double>& p, int level, double scale) {
    const int d = static_cast<int>(p.size()) - 1;
    VEIL_REQUIRE(d >= 1, "internal: constant polynomial has no ciphertext form");
    if (d == 1) {
      Ciphertext x = power(1);
      eval_.drop_to_level_inplace(x, level + 1);
      // (x.scale * cs) / q_{level+1} = scale.
      const double cs = scale * prime(level + 1) / x.scale();
      eval_.multiply_const_inplace(x, p[1], cs);
      eval_.rescale_inplace(x);
      x.set_scale(scale);  // equal up to rounding of the double arithmetic above
      if (p[0] != 0) eval_.add_const_inplace(x, p[0]);
      return x;
    }
    const int m = std::bit_floor(static_cast<unsigned>(d));
    const std::vector<double> q(p.begin() + m, p.end());
    const std::vector<double> r(p.begin(), p.begin() + m);
    Ciphertext xm = power(m);
    VEIL_REQUIRE(xm.level() > level, "internal: not enough levels for the polynomial");
    eval_.drop_to_level_inplace(xm, level + 1);
    // q at (level + 1, s_q) with s_q * s_m / q_{level+1} = scale.
    Ciphertext qc;
    if (q.size() == 1) {
      // Constant quotient: q0 * x^m with q0 encoded at the matching scale.
      qc = xm;
      eval_.multiply_const_inplace(qc, q[0], scale * prime(level + 1) / xm.scale());
      eval_.rescale_inplace(qc);
    } else {
      qc = at(q, level + 1, scale * prime(level + 1) / xm.scale());
      eval_.multiply_relin_inplace(qc, xm, rk_);
      eval_.rescale_inplace(qc);
    }
    qc.set_scale(scale);
    add_lower(qc, r);
    return qc;
  }

 private:
  // acc += r(x), with r evaluated at acc's level and scale.
  void add_lower(Ciphertext& acc, const std::vector<double>& r_in) {
    const std::vector<double> r = trimmed(r_in);
    if (r.size() >= 2) {
      Ciphertext rc = at(r, acc.level(), acc.scale());
      eval_.add_inplace(acc, rc);
    } else if (r[0] != 0) {
      eval_.add_const_inplace(acc, r[0]);
    }
  }

  double prime(int level) const { return static_cast<double>(eval_.context()->modulus(level).value()); }

  const ckks::Evaluator& eval_;
  const rlwe::RelinKeys& rk_;
  std::map<int, Ciphertext> powers_;
};

// PolyEvaluator's level and scale arithmetic alone (natural()).
class ScaleMirror {
 public:
  ScaleMirror(const ckks::CkksContext& ctx, int level, double scale) : ctx_(ctx) {
    powers_[1] = {level, scale};
  }

  std::pair<int, double> power(int m) {
    if (auto it = powers_.find(m); it != powers_.end()) return it->second;
    const auto [level, scale] = power(m / 2);
    return powers_[m] = {level - 1, scale * scale / prime(level)};
  }

  std::pair<int, double> natural(const std::vector<double>& p) {
    const int d = static_cast<int>(p.size()) - 1;
    const auto x = power(1);
    if (d == 1) return p[1] == 1.0 ? x : std::pair<int, double>{x.first - 1, x.second};
    const int m = std::bit_floor(static_cast<unsigned>(d));
    const std::vector<double> q(p.begin() + m, p.end());
    if (q.size() == 1 && q[0] == 1.0) return power(m);  // the lower terms land on it
    const auto qc = natural(q), xm = power(m);
    const int l = std::min(qc.first, xm.first);
    return {l - 1, qc.second * xm.second / prime(l)};
  }

 private:
  double prime(int level) const { return static_cast<double>(ctx_.modulus(level).value()); }
  const ckks::CkksContext& ctx_;
  std::map<int, std::pair<int, double>> powers_;
};

}  // namespace

double polynomial_scale(const ckks::CkksContext& ctx, const std::vector<double>& coefficients, int level,
                        double scale) {
  const std::vector<double> c = trimmed(coefficients);
  if (c.size() < 2 || c.back() != 1.0) return scale;
  return ScaleMirror(ctx, level, scale).natural(c).second;
}

int polynomial_depth(const std::vector<double>& coefficients) {
  const std::vector<double> c = trimmed(coefficients);
  const int d = static_cast<int>(c.size()) - 1;
  if (d <= 0) return 0;
  if (c.back() == 1.0) return d == 1 ? 0 : ceil_log2(d);
  return ceil_log2(d + 1);
}

Ciphertext evaluate_polynomial(const ckks::Evaluator& eval, const Ciphertext& x,
                               const std::vector<double>& coefficients, const rlwe::RelinKeys& rk,
                               bool relinearize_result) {
  VEIL_REQUIRE(!coefficients.empty(), "polynomial has no coefficients");
  for (double c : coefficients) VEIL_REQUIRE(std::isfinite(c), "polynomial coefficient is not finite");
  const std::vector<double> c = trimmed(coefficients);
  const int depth = polynomial_depth(c);
  VEIL_REQUIRE(x.level() >= depth, "polynomial of degree " << c.size() - 1 << " needs " << depth
                                                           << " levels, the ciphertext has " << x.level());
  VEIL_REQUIRE(c.size() >= 2, "constant polynomial: fold it into the next layer's bias");
  PolyEvaluator pe(eval, x, rk);
  const bool monic = c.back() == 1.0;
  if (!relinearize_result && monic && c.size() == 3) {
    // x^2 + c1 x + c0 at scale s^2, neither relinearised nor rescaled: rescaling the third
    // polynomial would multiply its rounding error by s^2 at decryption, so the consumer
    // relinearises first and then rescales twice.
    Ciphertext sq = eval.multiply(x, x);
    if (c[1] != 0) {
      Ciphertext lin = x;
      eval.multiply_const_inplace(lin, c[1], x.scale());
      eval.add_inplace(sq, lin);
    }
    if (c[0] != 0) eval.add_const_inplace(sq, c[0]);
    return sq;
  }
  if (monic) return pe.natural(c);
  // Not monic: the leading coefficient costs one more level (ceil(log2(d + 1)) in all),
  // and the result lands at x's scale.
  return pe.at(c, x.level() - depth, x.scale());
}

}  // namespace veil::he
