// Internal to the ONNX importer: element-wise subgraphs of one tensor as scalar functions.
//
// torch.onnx.export writes a hand-written activation such as `a*x*x + b*x + c` as a
// chain of Mul/Add nodes with scalar constants, and SiLU as `x * Sigmoid(x)`. The
// importer follows such chains symbolically: every value computed from one tensor x by
// element-wise nodes is an expression tree in x. When the value is consumed by anything
// else it becomes a single Poly node: exactly, when the tree is a polynomial, or by a
// least-squares fit when it is a known activation and the user asked for that.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace veil::nn::detail {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Op { kX, kConst, kAdd, kSub, kMul, kDiv, kPow, kNeg, kFn };
  Op op = Op::kX;
  double value = 0;  // kConst
  std::string fn;    // kFn: ONNX op type (Relu, Sigmoid, Tanh, Softplus, Erf, Exp, Gelu)
  std::string node;  // ONNX node that computed this operation (for messages)
  ExprPtr a, b;
};

ExprPtr expr_x();
ExprPtr expr_const(double value);
ExprPtr expr_binary(Expr::Op op, ExprPtr a, ExprPtr b, const std::string& node);
ExprPtr expr_neg(ExprPtr a, const std::string& node);
ExprPtr expr_fn(const std::string& fn, ExprPtr a, const std::string& node);

// True for the ONNX op types expr_fn accepts.
bool is_elementwise_function(const std::string& onnx_op);

double evaluate(const Expr& e, double x);

// Ascending coefficients when e is a polynomial in x (only +, -, *, division by a
// constant, constant non-negative integer powers); nullopt otherwise. Throws
// std::invalid_argument naming the node when the degree exceeds kMaxExprDegree.
inline constexpr int kMaxExprDegree = 64;
std::optional<std::vector<double>> as_polynomial(const Expr& e);

// The first operation (post-order) that makes e non-polynomial: a function node, a
// division by a non-constant or a power with a non-integer or non-constant exponent;
// nullptr when e is a polynomial.
const Expr* first_non_polynomial(const Expr& e);

// Name of the activation (approximate.hpp's table) that e computes, checked numerically
// on [-8, 8]; empty when it is none of them.
std::string identify_activation(const Expr& e);

}  // namespace veil::nn::detail
