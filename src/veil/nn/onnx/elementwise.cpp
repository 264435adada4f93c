#include "veil/nn/onnx/elementwise.hpp"

#include <cmath>

#include "veil/common/error.hpp"
#include "veil/nn/approximate.hpp"

namespace veil::nn::detail {

namespace {

using Poly = std::vector<double>;

void trim(Poly& p) {
  while (p.size() > 1 && p.back() == 0) p.pop_back();
}

Poly add(const Poly& a, const Poly& b, double sign) {
  Poly r(std::max(a.size(), b.size()), 0.0);
  for (std::size_t i = 0; i < a.size(); ++i) r[i] += a[i];
  for (std::size_t i = 0; i < b.size(); ++i) r[i] += sign * b[i];
  trim(r);
  return r;
}

Poly mul(const Poly& a, const Poly& b, const std::string& node) {
  VEIL_REQUIRE(a.size() + b.size() - 2 <= static_cast<std::size_t>(kMaxExprDegree),
               "node '" << node << "': polynomial degree exceeds " << kMaxExprDegree);
  Poly r(a.size() + b.size() - 1, 0.0);
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < b.size(); ++j) r[i + j] += a[i] * b[j];
  trim(r);
  return r;
}

// The constant value of a polynomial of degree 0.
std::optional<double> constant_of(const std::optional<Poly>& p) {
  if (!p || p->size() != 1) return std::nullopt;
  return (*p)[0];
}

// A constant non-negative integer exponent, or nullopt.
std::optional<int> integer_exponent(const std::optional<Poly>& p) {
  const auto c = constant_of(p);
  if (!c || *c < 0 || *c != std::floor(*c) || *c > kMaxExprDegree) return std::nullopt;
  return static_cast<int>(*c);
}

}  // namespace

ExprPtr expr_x() { return std::make_shared<Expr>(); }

ExprPtr expr_const(double value) {
  auto e = std::make_shared<Expr>();
  e->op = Expr::Op::kConst;
  e->value = value;
  return e;
}

ExprPtr expr_binary(Expr::Op op, ExprPtr a, ExprPtr b, const std::string& node) {
  auto e = std::make_shared<Expr>();
  e->op = op;
  e->a = std::move(a);
  e->b = std::move(b);
  e->node = node;
  return e;
}

ExprPtr expr_neg(ExprPtr a, const std::string& node) {
  auto e = std::make_shared<Expr>();
  e->op = Expr::Op::kNeg;
  e->a = std::move(a);
  e->node = node;
  return e;
}

bool is_elementwise_function(const std::string& onnx_op) {
  return onnx_op == "Relu" || onnx_op == "Sigmoid" || onnx_op == "Tanh" || onnx_op == "Softplus" ||
         onnx_op == "Erf" || onnx_op == "Exp" || onnx_op == "Gelu";
}

ExprPtr expr_fn(const std::string& fn, ExprPtr a, const std::string& node) {
  VEIL_REQUIRE(is_elementwise_function(fn),
               "node '" << node << "': " << fn << " is not an element-wise function");
  auto e = std::make_shared<Expr>();
  e->op = Expr::Op::kFn;
  e->fn = fn;
  e->a = std::move(a);
  e->node = node;
  return e;
}

double evaluate(const Expr& e, double x) {
  switch (e.op) {
    case Expr::Op::kX:
      return x;
    case Expr::Op::kConst:
      return e.value;
    case Expr::Op::kAdd:
      return evaluate(*e.a, x) + evaluate(*e.b, x);
    case Expr::Op::kSub:
      return evaluate(*e.a, x) - evaluate(*e.b, x);
    case Expr::Op::kMul:
      return evaluate(*e.a, x) * evaluate(*e.b, x);
    case Expr::Op::kDiv:
      return evaluate(*e.a, x) / evaluate(*e.b, x);
    case Expr::Op::kPow:
      return std::pow(evaluate(*e.a, x), evaluate(*e.b, x));
    case Expr::Op::kNeg:
      return -evaluate(*e.a, x);
    case Expr::Op::kFn: {
      const double v = evaluate(*e.a, x);
      if (e.fn == "Relu") return v > 0 ? v : 0;
      if (e.fn == "Sigmoid") return 1 / (1 + std::exp(-v));
      if (e.fn == "Tanh") return std::tanh(v);
      if (e.fn == "Softplus") return v > 0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
      if (e.fn == "Erf") return std::erf(v);
      if (e.fn == "Exp") return std::exp(v);
      if (e.fn == "Gelu") return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      return std::nan("");
    }
  }
  return std::nan("");
}

std::optional<std::vector<double>> as_polynomial(const Expr& e) {
  switch (e.op) {
    case Expr::Op::kX:
      return Poly{0.0, 1.0};
    case Expr::Op::kConst:
      return Poly{e.value};
    case Expr::Op::kNeg: {
      auto a = as_polynomial(*e.a);
      if (!a) return std::nullopt;
      for (double& c : *a) c = -c;
      return a;
    }
    case Expr::Op::kAdd:
    case Expr::Op::kSub:
    case Expr::Op::kMul: {
      auto a = as_polynomial(*e.a);
      auto b = as_polynomial(*e.b);
      if (!a || !b) return std::nullopt;
      if (e.op == Expr::Op::kMul) return mul(*a, *b, e.node);
      return add(*a, *b, e.op == Expr::Op::kAdd ? 1.0 : -1.0);
    }
    case Expr::Op::kDiv: {
      auto a = as_polynomial(*e.a);
      const auto d = constant_of(as_polynomial(*e.b));
      if (!a || !d || *d == 0) return std::nullopt;
      for (double& c : *a) c /= *d;
      return a;
    }
    case Expr::Op::kPow: {
      auto a = as_polynomial(*e.a);
      const auto k = integer_exponent(as_polynomial(*e.b));
      if (!a || !k) return std::nullopt;
      Poly r{1.0};
      for (int i = 0; i < *k; ++i) r = mul(r, *a, e.node);
      return r;
    }
    case Expr::Op::kFn:
      return std::nullopt;
  }
  return std::nullopt;
}

const Expr* first_non_polynomial(const Expr& e) {
  for (const ExprPtr& child : {e.a, e.b})
    if (child)
      if (const Expr* bad = first_non_polynomial(*child)) return bad;
  switch (e.op) {
    case Expr::Op::kFn:
      return &e;
    case Expr::Op::kDiv: {
      const auto d = constant_of(as_polynomial(*e.b));
      return d && *d != 0 ? nullptr : &e;
    }
    case Expr::Op::kPow:
      return integer_exponent(as_polynomial(*e.b)) ? nullptr : &e;
    default:
      return nullptr;
  }
}

std::string identify_activation(const Expr& e) {
  // Exporters write the same function in several ways (SiLU as x * Sigmoid(x) or
  // x / (1 + Exp(-x)), GELU through Erf with a float32 sqrt(2)), so compare values
  // rather than tree shapes. 1e-6 accepts float32 constants and rejects any real
  // difference between the functions of the table.
  constexpr int kPoints = 161;
  for (const char* candidate : {"relu", "softplus", "sigmoid", "tanh", "silu", "gelu"}) {
    const auto f = activation_function(candidate);
    bool same = true;
    for (int i = 0; i < kPoints && same; ++i) {
      const double x = -8.0 + 16.0 * i / (kPoints - 1);
      const double want = f(x), got = evaluate(e, x);
      same = std::abs(got - want) <= 1e-6 * std::max(1.0, std::abs(want));
    }
    if (same) return candidate;
  }
  return {};
}

}  // namespace veil::nn::detail
