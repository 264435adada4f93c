#include "veil/nn/approximate.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <numbers>
#include <utility>

#include "veil/common/error.hpp"

namespace veil::nn {

namespace {

double relu(double x) { return x > 0 ? x : 0; }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
// log(1 + e^x) without overflow for large x.
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
double silu(double x) { return x * sigmoid(x); }
double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::numbers::sqrt2)); }
double tanh_fn(double x) { return std::tanh(x); }

const std::vector<std::pair<std::string, double (*)(double)>>& table() {
  static const std::vector<std::pair<std::string, double (*)(double)>> t = {
      {"relu", relu},    {"softplus", softplus}, {"sigmoid", sigmoid},
      {"tanh", tanh_fn}, {"silu", silu},         {"gelu", gelu}};
  return t;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// A whole-string decimal number (no trailing junk, no "inf"/"nan").
bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && ptr == end && std::isfinite(out);
}

bool parse_int(const std::string& s, int& out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

std::string approximable_functions() {
  std::string out;
  for (const auto& [name, fn] : table()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

std::function<double(double)> activation_function(const std::string& name) {
  for (const auto& [n, fn] : table())
    if (n == name) return fn;
  VEIL_REQUIRE(false, "unknown activation '" << name << "' (known: " << approximable_functions() << ")");
  return {};
}

ApproxSpec parse_approx_spec(const std::string& text) {
  const std::string usage = "expected FUNCTION:degD:rangeB such as relu:deg4:range8, or poly:rangeB";
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  ApproxSpec spec;
  spec.function = parts[0];
  std::transform(spec.function.begin(), spec.function.end(), spec.function.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (spec.function == "swish") spec.function = "silu";
  VEIL_REQUIRE(!spec.function.empty(),
               "approximation spec '" << text << "': missing function name; " << usage);
  const bool is_poly = spec.function == "poly";
  VEIL_REQUIRE(is_poly || std::any_of(table().begin(), table().end(),
                                      [&](const auto& e) { return e.first == spec.function; }),
               "approximation spec '" << text << "': unknown function '" << parts[0]
                                      << "' (known: " << approximable_functions() << ", poly)");
  VEIL_REQUIRE(parts.size() == (is_poly ? 2u : 3u), "approximation spec '" << text << "': " << usage);
  bool have_degree = false, have_range = false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (starts_with(p, "deg") && !is_poly) {
      VEIL_REQUIRE(!have_degree && parse_int(p.substr(3), spec.degree),
                   "approximation spec '" << text << "': bad degree '" << p << "'; " << usage);
      have_degree = true;
    } else if (starts_with(p, "range")) {
      VEIL_REQUIRE(!have_range && parse_double(p.substr(5), spec.range),
                   "approximation spec '" << text << "': bad range '" << p << "'; " << usage);
      have_range = true;
    } else {
      VEIL_REQUIRE(false, "approximation spec '" << text << "': unexpected field '" << p << "'; " << usage);
    }
  }
  VEIL_REQUIRE(is_poly || (spec.degree >= 1 && spec.degree <= kMaxApproxDegree),
               "approximation spec '" << text << "': degree must be 1.." << kMaxApproxDegree << ", got "
                                      << spec.degree);
  VEIL_REQUIRE(spec.range > 0,
               "approximation spec '" << text << "': range must be positive, got " << spec.range);
  return spec;
}

std::vector<double> fit_polynomial(const std::function<double(double)>& f, int degree, double range) {
  VEIL_REQUIRE(degree >= 0 && degree <= kMaxApproxDegree, "fit degree must be 0.." << kMaxApproxDegree);
  VEIL_REQUIRE(std::isfinite(range) && range > 0, "fit range must be positive and finite");
  // M Chebyshev nodes t_k = cos(pi (k + 1/2) / M). For j, l < M the T_j are orthogonal
  // under the discrete sum over these nodes, so the least-squares coefficients are
  // a_j = (2/M) sum_k f(B t_k) T_j(t_k), halved for j = 0 (discrete orthogonality of the
  // Chebyshev polynomials; Mason & Handscomb, "Chebyshev Polynomials", 2003).
  const int m = std::max(1024, 32 * (degree + 1));
  std::vector<double> cheb(degree + 1, 0.0);
  for (int k = 0; k < m; ++k) {
    const double theta = std::numbers::pi * (k + 0.5) / m;
    const double fx = f(range * std::cos(theta));
    VEIL_REQUIRE(std::isfinite(fx), "function is not finite on the fit range");
    for (int j = 0; j <= degree; ++j) cheb[j] += fx * std::cos(j * theta);  // T_j(cos t) = cos(j t)
  }
  for (int j = 0; j <= degree; ++j) cheb[j] *= (j == 0 ? 1.0 : 2.0) / m;

  // Chebyshev series in t -> power series in t (T_{j+1} = 2t T_j - T_{j-1}), then x = B t.
  std::vector<double> power(degree + 1, 0.0);
  std::vector<double> t_prev(degree + 1, 0.0), t_cur(degree + 1, 0.0);
  t_prev[0] = 1;                  // T_0
  if (degree >= 1) t_cur[1] = 1;  // T_1
  for (int j = 0; j <= degree; ++j) {
    const std::vector<double>& tj = j == 0 ? t_prev : t_cur;
    for (int i = 0; i <= degree; ++i) power[i] += cheb[j] * tj[i];
    if (j >= 1 && j < degree) {
      std::vector<double> next(degree + 1, 0.0);
      for (int i = 0; i < degree; ++i) next[i + 1] = 2 * t_cur[i];
      for (int i = 0; i <= degree; ++i) next[i] -= t_prev[i];
      t_prev = std::move(t_cur);
      t_cur = std::move(next);
    }
  }
  double scale = 1;
  for (int i = 0; i <= degree; ++i, scale /= range) power[i] *= scale;
  return power;
}

double eval_polynomial(const std::vector<double>& coefficients, double x) {
  double y = 0;
  for (auto it = coefficients.rbegin(); it != coefficients.rend(); ++it) y = y * x + *it;
  return y;
}

double max_fit_error(const std::function<double(double)>& f, const std::vector<double>& coefficients,
                     double range) {
  constexpr int kPoints = 20000;
  double err = 0;
  for (int i = 0; i <= kPoints; ++i) {
    const double x = -range + 2 * range * i / kPoints;
    err = std::max(err, std::abs(f(x) - eval_polynomial(coefficients, x)));
  }
  return err;
}

}  // namespace veil::nn
