// The hybrid mode's online stage. The server's per-layer work is y = W (x - r) on shares
// in Z_p (hybrid/linear.hpp); it should run near the speed of the same layer in plain
// double precision, which BM_PlainConvDouble measures with a direct loop of the same
// shape (CIFAR-sized: 64 -> 64 channels, 3x3, 32x32, stride 1, zero padding 1).
//
//   build/bench/veil_hybrid_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cmath>
#include <fstream>
#include <random>
#include <span>
#include <thread>

#include "veil/hybrid/linear.hpp"
#include "veil/hybrid/online.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/mpc/activation.hpp"
#include "veil/mpc/channel_exchange.hpp"
#include "veil/mpc/truncate.hpp"
#include "veil/net/memory_channel.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil {
namespace {

using mpc::u64;

constexpr int kC = 64, kH = 32, kW = 32, kK = 3;

// The convolution as the integer CSR matrix the online phase applies (weights of 8-10
// significant bits, as the planner picks for CIFAR-scale layers).
hybrid::QuantLinear conv_layer() {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> w(-600, 600);
  hybrid::QuantLinear q;
  q.rows = kC * kH * kW;
  q.cols = kC * kH * kW;
  q.row_ptr.push_back(0);
  std::vector<int> kernel(static_cast<std::size_t>(kC * kC * kK * kK));
  for (auto& v : kernel) v = w(rng);
  for (int o = 0; o < kC; ++o)
    for (int y = 0; y < kH; ++y)
      for (int x = 0; x < kW; ++x) {
        std::int64_t l1 = 0;
        for (int i = 0; i < kC; ++i)
          for (int dy = 0; dy < kK; ++dy)
            for (int dx = 0; dx < kK; ++dx) {
              const int yy = y + dy - 1, xx = x + dx - 1;
              if (yy < 0 || yy >= kH || xx < 0 || xx >= kW) continue;
              q.col.push_back((i * kH + yy) * kW + xx);
              q.weight.push_back(kernel[static_cast<std::size_t>(((o * kC + i) * kK + dy) * kK + dx)]);
              l1 += std::abs(q.weight.back());
            }
        q.row_ptr.push_back(static_cast<std::int64_t>(q.col.size()));
        q.max_row_l1 = std::max(q.max_row_l1, l1);
      }
  q.bias.assign(static_cast<std::size_t>(q.rows), 0);
  q.weight_bits = 10;
  return q;
}

void BM_OnlineConvShares(benchmark::State& state) {
  const mpc::Field f(hybrid::default_prime(), 8);
  const auto q = conv_layer();
  mpc::MaskSource masks;
  const auto x = masks.uniform(f, static_cast<std::size_t>(q.cols));
  for (auto _ : state) benchmark::DoNotOptimize(hybrid::apply(f, q, x, true));
  state.counters["MAC/s"] =
      benchmark::Counter(static_cast<double>(q.weight.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_OnlineConvShares)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_OnlineConvSharesReference(benchmark::State& state) {
  const mpc::Field f(hybrid::default_prime(), 8);
  const auto q = conv_layer();
  mpc::MaskSource masks;
  const auto x = masks.uniform(f, static_cast<std::size_t>(q.cols));
  for (auto _ : state) benchmark::DoNotOptimize(hybrid::apply_reference(f, q, x, true));
  state.counters["MAC/s"] =
      benchmark::Counter(static_cast<double>(q.weight.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_OnlineConvSharesReference)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same convolution in double precision, direct loops, one thread: what a plaintext
// layer costs without a tuned library.
void BM_PlainConvDouble(benchmark::State& state) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> in(static_cast<std::size_t>(kC * kH * kW)), out(in.size()),
      k(static_cast<std::size_t>(kC * kC * kK * kK));
  for (auto& v : in) v = u(rng);
  for (auto& v : k) v = u(rng);
  std::int64_t macs = 0;
  for (auto _ : state) {
    macs = 0;
    for (int o = 0; o < kC; ++o)
      for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x) {
          double acc = 0;
          for (int i = 0; i < kC; ++i)
            for (int dy = 0; dy < kK; ++dy) {
              const int yy = y + dy - 1;
              if (yy < 0 || yy >= kH) continue;
              for (int dx = 0; dx < kK; ++dx) {
                const int xx = x + dx - 1;
                if (xx < 0 || xx >= kW) continue;
                acc += k[static_cast<std::size_t>(((o * kC + i) * kK + dy) * kK + dx)] *
                       in[static_cast<std::size_t>((i * kH + yy) * kW + xx)];
                ++macs;
              }
            }
          out[static_cast<std::size_t>((o * kH + y) * kW + x)] = acc;
        }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["MAC/s"] =
      benchmark::Counter(static_cast<double>(macs), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PlainConvDouble)->Unit(benchmark::kMillisecond)->UseRealTime();

// Secure squares (one round of Beaver squaring plus local truncation) on n shared values,
// both parties in this process over the in-memory channel pair.
void BM_SecureSquares(benchmark::State& state) {
  const std::size_t n = static_cast<std::size_t>(state.range(0));
  const mpc::Field f(hybrid::default_prime(), 8);
  mpc::MaskSource masks;
  const auto x = mpc::split(f, f.encode(std::vector<double>(n, 1.5), 8), masks);
  const std::vector<double> c = {0.0, 0.0, 1.0};
  for (auto _ : state) {
    state.PauseTiming();
    auto [ss, sc] = mpc::deal_squares(f, n, masks);
    mpc::SquarePool ps(std::move(ss)), pc(std::move(sc));
    mpc::TriplePool ts, tc;
    auto [a, b] = net::make_memory_pair();
    mpc::ChannelExchange es(*a, mpc::Role::kServer, f, 40), ec(*b, mpc::Role::kClient, f, 40);
    state.ResumeTiming();
    std::thread server([&] { mpc::poly_activation(f, mpc::Role::kServer, x.server, c, 12, ps, ts, es); });
    mpc::poly_activation(f, mpc::Role::kClient, x.client, c, 12, pc, tc, ec);
    server.join();
  }
  state.counters["squares/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SecureSquares)->Arg(1 << 16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Local truncation of 2^16 shared values on one party's share: one prime (arg 1) or the
// two-prime ring (arg 2), whose truncation recombines each element's residues.
void BM_Truncate(benchmark::State& state) {
  const mpc::Field f = state.range(0) == 1
                           ? mpc::Field(hybrid::default_prime(), 8)
                           : mpc::Field({hybrid::default_prime(), hybrid::default_prime2()}, 8);
  mpc::MaskSource masks;
  const std::size_t n = std::size_t{1} << 16;
  const auto x = masks.uniform(f, n * static_cast<std::size_t>(f.words()));
  for (auto _ : state) {
    auto y = x;
    mpc::truncate_inplace(f, mpc::Role::kClient, y, 12);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["values/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Truncate)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

// One whole online inference of a shipped MNIST model over the in-memory channel (the
// preprocessing material dealt outside the timing).
void BM_OnlineMnist(benchmark::State& state, const char* model) {
  const nn::Network net =
      nn::lower(nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/" + model), hybrid::lower_options());
  const hybrid::Program prog = hybrid::lower(net);
  const std::vector<double> x(static_cast<std::size_t>(net.input.size()), 0.5);
  mpc::MaskSource masks;
  const mpc::Field f = prog.field();
  for (auto _ : state) {
    state.PauseTiming();
    auto [sm, cm] = hybrid::deal(prog, masks);
    auto [a, b] = net::make_memory_pair();
    mpc::ChannelExchange es(*a, mpc::Role::kServer, f, 40), ec(*b, mpc::Role::kClient, f, 40);
    state.ResumeTiming();
    std::thread server([&] { hybrid::run_server(prog, std::move(sm), es); });
    benchmark::DoNotOptimize(hybrid::run_client(prog, std::move(cm), x, ec));
    server.join();
  }
}
BENCHMARK_CAPTURE(BM_OnlineMnist, mnist_cryptonets, "mnist-cryptonets.onnx")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnlineMnist, mnist_delphi, "mnist-delphi.onnx")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Against a straightforward baseline (issue 16): the same protocol without the merging
// stage (every linear layer of the model its own op: its own masked input, truncation and
// preprocessing product; batch norm and pools not folded), and the server's linear layers
// as naive per-element share arithmetic (one modular multiply-add per weight, one thread,
// no 31-bit halves, no blocking). Ours: merged program, hybrid::apply.
//
//   build/bench/veil_hybrid_bench --benchmark_filter='Stages|LinearWork|Preprocess(Mnist|Baseline)'
std::vector<u64> naive_kernel(const mpc::Field& f, const hybrid::QuantLinear& q, std::span<const u64> x,
                              bool add_bias) {
  const std::size_t words = static_cast<std::size_t>(f.words());
  std::vector<u64> y(static_cast<std::size_t>(q.rows) * words);
  for (std::size_t k = 0; k < words; ++k) {
    const auto& m = f.mod(static_cast<int>(k));
    for (int r = 0; r < q.rows; ++r) {
      u64 acc = add_bias ? m.from_signed(q.bias[static_cast<std::size_t>(r)]) : 0;
      for (std::int64_t e = q.row_ptr[static_cast<std::size_t>(r)];
           e < q.row_ptr[static_cast<std::size_t>(r) + 1]; ++e)
        acc = m.add(acc, m.mul(m.from_signed(q.weight[static_cast<std::size_t>(e)]),
                               x[static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)]) * words + k]));
      y[static_cast<std::size_t>(r) * words + k] = acc;
    }
  }
  return y;
}

// The 16 shipped MNIST test images, normalised by the model's mean and std.
std::vector<std::vector<double>> mnist_samples(const nn::Network& net) {
  std::ifstream in(std::string(VEIL_SOURCE_DIR) + "/models/samples/mnist-test-first16-images-idx3-ubyte",
                   std::ios::binary);
  std::vector<std::uint8_t> px(16 + 16 * 784);
  in.read(reinterpret_cast<char*>(px.data()), static_cast<std::streamsize>(px.size()));
  std::vector<std::vector<double>> out;
  for (std::size_t t = 0; t < 16; ++t)
    out.push_back(nn::normalize(
        net, std::vector<std::uint8_t>(px.begin() + static_cast<std::ptrdiff_t>(16 + t * 784),
                                       px.begin() + static_cast<std::ptrdiff_t>(16 + (t + 1) * 784))));
  return out;
}

// Scales chosen on the sample images (as the commands choose them on training images).
// ring: the two-prime ring by default (the bench's reference), kOnePrime for shares over Z_p
// alone (the narrow field before the ring), kAuto as the commands choose.
hybrid::Program mnist_program(const char* model, bool baseline,
                              hybrid::ShareRing ring = hybrid::ShareRing::kTwoPrimes) {
  const nn::Graph g = nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/" + model);
  const nn::Network net = nn::lower(g, baseline ? nn::LowerOptions::none() : hybrid::lower_options());
  hybrid::ProgramOptions o;
  o.merge = !baseline;
  o.ring = ring;
  o.calibration = mnist_samples(net);
  return hybrid::lower(net, o);
}

// One online inference per iteration; counters: the server's time in linear layers and
// in activations (ms per inference), rounds, online bytes.
void BM_OnlineStages(benchmark::State& state, const char* model, bool baseline,
                     hybrid::ShareRing ring = hybrid::ShareRing::kTwoPrimes) {
  const hybrid::Program prog = mnist_program(model, baseline, ring);
  const nn::Network net = nn::lower(nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/" + model));
  const std::vector<double> x = mnist_samples(net).front();
  mpc::MaskSource masks;
  const mpc::Field f = prog.field();
  double linear_s = 0, activation_s = 0, max_err = 0;
  std::int64_t runs = 0, elements = 0;
  int rounds = 0, linear_ops = 0;
  for (const auto& op : prog.ops) linear_ops += op.kind == hybrid::Op::Kind::kLinear;
  for (auto _ : state) {
    state.PauseTiming();
    auto [sm, cm] = hybrid::deal(prog, masks);
    auto [a, b] = net::make_memory_pair();
    mpc::ChannelExchange es(*a, mpc::Role::kServer, f, 40), ec(*b, mpc::Role::kClient, f, 40);
    hybrid::OnlineStats ss;
    state.ResumeTiming();
    std::thread server(
        [&] { hybrid::run_server(prog, std::move(sm), es, &ss, baseline ? naive_kernel : nullptr); });
    const auto logits = hybrid::run_client(prog, std::move(cm), x, ec);
    server.join();
    state.PauseTiming();
    // Both variants compute the program's fixed-point logits (to the truncations' units).
    const auto want = hybrid::evaluate_fixed(prog, x);
    for (std::size_t k = 0; k < want.size(); ++k) max_err = std::max(max_err, std::fabs(logits[k] - want[k]));
    state.ResumeTiming();
    linear_s += ss.linear_s, activation_s += ss.activation_s;
    rounds = ss.rounds;
    elements = ss.elements_sent + ss.elements_received;
    ++runs;
  }
  state.counters["linear_ms"] = 1e3 * linear_s / static_cast<double>(runs);
  state.counters["act_ms"] = 1e3 * activation_s / static_cast<double>(runs);
  state.counters["rounds"] = rounds;
  state.counters["linear_ops"] = linear_ops;
  state.counters["elements"] = static_cast<double>(elements);
  state.counters["max_err"] = max_err;
  state.counters["primes"] = static_cast<double>(prog.primes().size());
}
BENCHMARK_CAPTURE(BM_OnlineStages, mnist_delphi_ours, "mnist-delphi.onnx", false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnlineStages, mnist_delphi_baseline, "mnist-delphi.onnx", true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnlineStages, mnist_delphi_one_prime, "mnist-delphi.onnx", false,
                  hybrid::ShareRing::kOnePrime)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
// The ring ShareRing::kAuto chooses on the sample images (counter primes).
BENCHMARK_CAPTURE(BM_OnlineStages, mnist_delphi_auto, "mnist-delphi.onnx", false, hybrid::ShareRing::kAuto)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The server's linear work alone (every linear op of the program once, on uniform
// shares): merged program with hybrid::apply against the unmerged one with the naive loop.
void BM_OnlineLinearWork(benchmark::State& state, const char* model, bool baseline) {
  const hybrid::Program prog = mnist_program(model, baseline);
  const mpc::Field f = prog.field();
  mpc::MaskSource masks;
  std::vector<std::vector<u64>> in;
  for (const auto& op : prog.ops)
    in.push_back(
        op.kind == hybrid::Op::Kind::kLinear
            ? masks.uniform(f, static_cast<std::size_t>(op.linear.cols) * static_cast<std::size_t>(f.words()))
            : std::vector<u64>{});
  std::int64_t macs = 0;
  for (const auto& op : prog.ops)
    if (op.kind == hybrid::Op::Kind::kLinear) macs += static_cast<std::int64_t>(op.linear.weight.size());
  for (auto _ : state)
    for (std::size_t k = 0; k < prog.ops.size(); ++k)
      if (prog.ops[k].kind == hybrid::Op::Kind::kLinear)
        benchmark::DoNotOptimize(baseline ? naive_kernel(f, prog.ops[k].linear, in[k], true)
                                          : hybrid::apply(f, prog.ops[k].linear, in[k], true));
  state.counters["MACs"] = static_cast<double>(macs);
}
BENCHMARK_CAPTURE(BM_OnlineLinearWork, mnist_delphi_ours, "mnist-delphi.onnx", false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OnlineLinearWork, mnist_delphi_baseline, "mnist-delphi.onnx", true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Preprocessing under the exact scheme, both roles in this process over the in-memory
// channel (keys sent once, outside the timing); bytes per run as counters.
void run_preprocessing(benchmark::State& state, const hybrid::Program& prog, double per_run_items,
                       const char* item_name) {
  const hybrid::HeParameters hp = hybrid::he_parameters(prog);
  auto model = std::make_shared<const hybrid::ServerModel>(prog, hp);
  hybrid::PreprocessServer server(model);
  hybrid::PreprocessClient client(prog, hp);
  auto [a, b] = net::make_memory_pair();
  std::thread keys([&] { server.receive_keys(*a); });
  client.send_keys(*b);
  keys.join();
  const auto up0 = b->bytes_sent(), down0 = b->bytes_received();
  std::int64_t runs = 0;
  for (auto _ : state) {
    std::thread s([&] { benchmark::DoNotOptimize(server.run(*a)); });
    benchmark::DoNotOptimize(client.run(*b));
    s.join();
    ++runs;
  }
  state.counters["MB_up"] = static_cast<double>(b->bytes_sent() - up0) / 1e6 / static_cast<double>(runs);
  state.counters["MB_down"] =
      static_cast<double>(b->bytes_received() - down0) / 1e6 / static_cast<double>(runs);
  if (per_run_items > 0) {
    state.counters[item_name] =
        benchmark::Counter(per_run_items, benchmark::Counter::kIsIterationInvariantRate);
    state.counters[std::string("B/") + item_name] =
        static_cast<double>(b->bytes_sent() - up0 + b->bytes_received() - down0) / static_cast<double>(runs) /
        per_run_items;
  }
}

// Beaver squares from the exact scheme (SIMD, N per ciphertext): a program that is one
// square activation over 3 x 8192 values.
void BM_BeaverSquaresHe(benchmark::State& state) {
  nn::Network net;
  net.name = "squares";
  net.input = nn::Shape{3 * 8192, 1, 1};
  nn::PolyStage square;
  square.name = "square";
  square.coefficients = {0, 0, 1};
  square.input_range = 2;
  net.stages.emplace_back(square);
  const hybrid::Program prog = hybrid::lower(net);
  run_preprocessing(state, prog, 3 * 8192, "squares");
}
BENCHMARK(BM_BeaverSquaresHe)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

// All of one MNIST inference's preprocessing: every linear layer's W r - s and the squares.
void BM_PreprocessMnist(benchmark::State& state, const char* model) {
  const nn::Network net =
      nn::lower(nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/" + model), hybrid::lower_options());
  run_preprocessing(state, hybrid::lower(net), 0, "");
}
BENCHMARK_CAPTURE(BM_PreprocessMnist, mnist_cryptonets, "mnist-cryptonets.onnx")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_PreprocessMnist, mnist_delphi, "mnist-delphi.onnx")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

// The same over one prime (the narrow field before the two-prime ring): half the
// exact-scheme exchanges.
void BM_PreprocessMnistOnePrime(benchmark::State& state, const char* model) {
  run_preprocessing(state, mnist_program(model, false, hybrid::ShareRing::kOnePrime), 0, "");
}
BENCHMARK_CAPTURE(BM_PreprocessMnistOnePrime, mnist_delphi, "mnist-delphi.onnx")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

// The unmerged baseline's preprocessing: one exact-scheme product per linear layer of the
// model (9 for mnist-delphi where ours has 4).
void BM_PreprocessBaseline(benchmark::State& state, const char* model) {
  run_preprocessing(state, mnist_program(model, true), 0, "");
}
BENCHMARK_CAPTURE(BM_PreprocessBaseline, mnist_delphi, "mnist-delphi.onnx")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace veil
