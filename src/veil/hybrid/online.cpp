#include "veil/hybrid/online.hpp"

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <tuple>

#include "veil/common/error.hpp"
#include "veil/hybrid/linear.hpp"
#include "veil/mpc/activation.hpp"
#include "veil/mpc/truncate.hpp"

namespace veil::hybrid {

namespace {

using mpc::Role;

// Counts what passes through, so runs can report rounds and volume per party.
class CountingExchange : public mpc::Exchange {
 public:
  explicit CountingExchange(mpc::Exchange& inner) : inner_(inner) {}
  std::vector<u64> swap(std::span<const u64> mine, std::size_t expect) override {
    ++s_.rounds;
    s_.elements_sent += static_cast<std::int64_t>(mine.size());
    s_.elements_received += static_cast<std::int64_t>(expect);
    return inner_.swap(mine, expect);
  }
  void send(std::span<const u64> mine) override {
    ++s_.rounds;
    s_.elements_sent += static_cast<std::int64_t>(mine.size());
    inner_.send(mine);
  }
  std::vector<u64> receive(std::size_t expect) override {
    ++s_.rounds;
    s_.elements_received += static_cast<std::int64_t>(expect);
    return inner_.receive(expect);
  }
  const OnlineStats& stats() const { return s_; }

 private:
  mpc::Exchange& inner_;
  OnlineStats s_;
};

const char* role_name(Role r) { return r == Role::kServer ? "server" : "client"; }

// Shares of a value at 2^from, brought to 2^to: a local truncation going down, an exact
// multiplication by a power of two going up.
void rescale(const mpc::Field& field, Role role, std::vector<u64>& v, int from, int to) {
  if (to < from) mpc::truncate_inplace(field, role, v, from - to);
  if (to > from) mpc::mul_public_inplace(field, v, std::int64_t{1} << (to - from));
}

std::vector<u64> run(const Program& prog, Material m, Role role, std::vector<u64> input_share,
                     mpc::Exchange& ex_inner, OnlineStats* stats, LinearKernel kernel) {
  if (kernel == nullptr) kernel = apply;
  using Clock = std::chrono::steady_clock;
  double linear_s = 0, activation_s = 0;
  check_material(prog, m, role);
  CountingExchange ex(ex_inner);
  const mpc::Field field = prog.field();
  mpc::SquarePool squares(std::move(m.squares));
  mpc::TriplePool triples(std::move(m.triples));
  std::vector<std::vector<u64>> out(prog.ops.size());
  auto value = [&](int j) -> const std::vector<u64>& {
    return j < 0 ? input_share : out[static_cast<std::size_t>(j)];
  };
  for (std::size_t k = 0; k < prog.ops.size(); ++k) {
    const Op& op = prog.ops[k];
    const auto& v = value(op.inputs.front());
    std::vector<u64>& y = out[k];
    auto t0 = Clock::now();
    switch (op.kind) {
      case Op::Kind::kLinear: {
        if (role == Role::kClient) {
          std::vector<u64> masked = v;
          mpc::sub_inplace(field, masked, m.mask[k]);
          ex.send(masked);
          y = std::move(m.offset[k]);
        } else {
          std::vector<u64> masked = ex.receive(v.size());
          t0 = Clock::now();  // the local work only, not the wait for the client's message
          mpc::add_inplace(field, masked, v);
          y = kernel(field, op.linear, masked, /*add_bias=*/true);
          mpc::add_inplace(field, y, m.offset[k]);
        }
        rescale(field, role, y, op.in_bits + op.linear.weight_bits, op.out_bits);
        linear_s += std::chrono::duration<double>(Clock::now() - t0).count();
        break;
      }
      case Op::Kind::kPoly:
        y = mpc::poly_activation(field, role, v, op.coefficients, op.poly, squares, triples, ex);
        activation_s += std::chrono::duration<double>(Clock::now() - t0).count();
        break;
      case Op::Kind::kAdd:
        y.assign(v.size(), 0);
        for (int j : op.inputs) {
          std::vector<u64> term = value(j);
          rescale(field, role, term, j < 0 ? prog.input_bits : prog.ops[static_cast<std::size_t>(j)].out_bits,
                  op.out_bits);
          mpc::add_inplace(field, y, term);
        }
        break;
    }
  }
  // The server's share of the output goes to the client, who alone reconstructs.
  std::vector<u64> result = prog.ops.empty() ? input_share : std::move(out.back());
  if (role == Role::kServer) {
    ex.send(result);
  } else {
    const auto peer = ex.receive(result.size());
    mpc::add_inplace(field, result, peer);
  }
  if (stats) {
    *stats = ex.stats();
    stats->linear_s = linear_s;
    stats->activation_s = activation_s;
  }
  return result;
}

}  // namespace

void check_material(const Program& prog, const Material& m, Role role) {
  VEIL_REQUIRE(m.role == role, "preprocessing material belongs to the " << role_name(m.role) << ", not the "
                                                                        << role_name(role));
  const std::size_t n = prog.ops.size();
  VEIL_REQUIRE(m.offset.size() == n && (role == Role::kServer || m.mask.size() == n),
               "preprocessing material does not fit this model ("
                   << m.offset.size() << " layers, the model has " << n << "); was it already used?");
  const mpc::Field field = prog.field();
  const std::size_t words = static_cast<std::size_t>(field.words());
  auto in_field = [&](const std::vector<u64>& v) { return mpc::in_field(field, v); };
  std::int64_t squares = 0, triples = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const Op& op = prog.ops[k];
    if (op.kind == Op::Kind::kLinear) {
      VEIL_REQUIRE(
          m.offset[k].size() == static_cast<std::size_t>(op.linear.rows) * words &&
              (role == Role::kServer || m.mask[k].size() == static_cast<std::size_t>(op.linear.cols) * words),
          "preprocessing material for layer '" << op.name << "' is missing or has the wrong size"
                                               << " (was it already used?)");
      VEIL_REQUIRE(in_field(m.offset[k]) && (role == Role::kServer || in_field(m.mask[k])),
                   "preprocessing material for layer '" << op.name << "' has values outside Z_p");
    } else if (op.kind == Op::Kind::kPoly) {
      const auto c = mpc::poly_cost(op.coefficients, static_cast<std::size_t>(op.out.size()) * words);
      squares += static_cast<std::int64_t>(c.squares);
      triples += static_cast<std::int64_t>(c.triples);
    }
  }
  VEIL_REQUIRE(in_field(m.squares.a) && in_field(m.squares.a2) && in_field(m.triples.a) &&
                   in_field(m.triples.b) && in_field(m.triples.c),
               "preprocessing material has Beaver shares outside the share ring");
  VEIL_REQUIRE(static_cast<std::int64_t>(m.squares.size()) == squares &&
                   static_cast<std::int64_t>(m.triples.size()) == triples,
               "preprocessing material has " << m.squares.size() << " squares and " << m.triples.size()
                                             << " triples, the model needs " << squares << " and " << triples
                                             << " (was it already used?)");
}

std::pair<Material, Material> deal(const Program& prog, mpc::MaskSource& masks) {
  const mpc::Field field = prog.field();
  Material server, client;
  server.role = Role::kServer;
  client.role = Role::kClient;
  const std::size_t n = prog.ops.size();
  server.offset.resize(n);
  client.offset.resize(n);
  client.mask.resize(n);
  std::size_t squares = 0, triples = 0;
  const std::size_t words = static_cast<std::size_t>(field.words());
  for (std::size_t k = 0; k < n; ++k) {
    const Op& op = prog.ops[k];
    if (op.kind == Op::Kind::kLinear) {
      client.mask[k] = masks.uniform(field, static_cast<std::size_t>(op.linear.cols) * words);
      server.offset[k] = masks.uniform(field, static_cast<std::size_t>(op.linear.rows) * words);
      client.offset[k] = apply_reference(field, op.linear, client.mask[k], /*add_bias=*/false);
      mpc::sub_inplace(field, client.offset[k], server.offset[k]);
    } else if (op.kind == Op::Kind::kPoly) {
      const auto c = mpc::poly_cost(op.coefficients, static_cast<std::size_t>(op.out.size()) * words);
      squares += c.squares;
      triples += c.triples;
    }
  }
  std::tie(server.squares, client.squares) = mpc::deal_squares(field, squares, masks);
  std::tie(server.triples, client.triples) = mpc::deal_triples(field, triples, masks);
  return {std::move(server), std::move(client)};
}

std::vector<double> run_client(const Program& prog, Material material, const std::vector<double>& input,
                               mpc::Exchange& ex, OnlineStats* stats) {
  VEIL_REQUIRE(static_cast<int>(input.size()) == prog.input.size(),
               "input has " << input.size() << " values, the model expects " << prog.input.size());
  const mpc::Field field = prog.field();
  // The client holds the whole input as its share; the server's share is zero.
  const auto share = field.encode(input, prog.input_bits);
  const auto y = run(prog, std::move(material), Role::kClient, share, ex, stats, nullptr);
  auto logits = field.decode(y, prog.output_bits());
  // An input far outside the ranges the scales were chosen for makes some value wrap
  // around p/2 (or a truncation fail); the shares then reconstruct to noise spread over
  // the whole field. With the logits' bound known (the server's program), noise almost
  // never lands within kWrapFactor of it (for a bound of 10 at 2^-20, a chance below 2^-26
  // per logit); the public program keeps this bound. Without one (0) the limit is the
  // planner's guarantee for the untruncated last layer, p/4 at the output's scale, which
  // catches half of such noise per logit. Refuse rather than answer.
  const double bound = prog.ops.empty() ? 0.0 : prog.ops.back().output_bound;
  const double limit = bound > 0 ? kWrapFactor * std::max(bound, std::ldexp(1.0, -prog.output_bits()))
                                 : std::ldexp(std::exp2(field.log2_modulus() - 2), -prog.output_bits());
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (!(std::abs(logits[i]) <= limit))
      throw ResultRefused("hybrid result out of the fixed-point range: logit " + std::to_string(i) + " is " +
                          std::to_string(logits[i]) + ", beyond " + std::to_string(limit) +
                          " (the model's logits stay below " +
                          std::to_string(prog.ops.empty() ? 0.0 : prog.ops.back().output_bound) +
                          " on its data); the input drives the network far outside the ranges its scales "
                          "were chosen for, so the answer is not trustworthy: check the input's "
                          "normalisation, or choose the scales on images like it (--calibration)");
  }
  return logits;
}

void run_server(const Program& prog, Material material, mpc::Exchange& ex, OnlineStats* stats,
                LinearKernel kernel) {
  std::vector<u64> zero(
      static_cast<std::size_t>(prog.input.size()) * static_cast<std::size_t>(prog.primes().size()), 0);
  run(prog, std::move(material), Role::kServer, std::move(zero), ex, stats, kernel);
}

}  // namespace veil::hybrid
