// veil_bfv_bench: the exact scheme on the hybrid mode's preprocessing of one CIFAR-sized
// convolution (64 -> 64 channels, 3x3, 32x32, stride 1, padding 1) under coefficient
// encoding (Cheetah layout, bfv/conv_layout.hpp).
//
// Parameters from bfv::select_parameters: t of 41 bits (batching prime, the share field),
// public L1 bound C * 3 * 3 * 2^12 (weights below 2^12 in magnitude), flooding margin 40.
// Phases (each timed for the whole convolution):
//   BM_ConvClientEncrypt  encode + encrypt (secret key, seed-compressed) + serialise the
//                         input blocks; counter bytes_up
//   BM_ConvServer         per output block: multiply-accumulate over the input blocks with
//                         the prepared kernels, minus the mask, flood, switch, extract,
//                         serialise; counter bytes_down
//   BM_ConvServerProductsOnly  the multiply-accumulates alone (part of BM_ConvServer)
//   BM_ConvClientDecrypt  load + decrypt every response
//   BM_ConvServerPrepare  the server's one-off preparation of the kernels (NTT form)
// And the HE part of a Beaver triple batch under SIMD batching (N triples per ciphertext,
// arbitrary plaintexts: L = N t / 2): client Enc(a_c) -> server Enc(a_c a_s - mask),
// flooded, switched, all N coefficients -> client decrypt + decode.
//   BM_BeaverBatchHE      one batch, both roles; counters triples, bytes_up, bytes_down
#include <benchmark/benchmark.h>
#include "veil/bfv/encoder.hpp"

#include <memory>
#include <random>

#include "veil/bfv/conv_layout.hpp"
#include "veil/bfv/encryptor.hpp"
#include "veil/bfv/evaluator.hpp"
#include "veil/bfv/flood.hpp"
#include "veil/bfv/serialize.hpp"
#include "veil/rlwe/keygen.hpp"

using namespace veil;
using bfv::u64;

namespace {

struct Conv {
  bfv::ConvShape shape{64, 32, 32, 64, 3, 3, 1, 1};
  bfv::ContextPtr ctx;
  std::unique_ptr<bfv::ConvLayout> layout;
  std::unique_ptr<rlwe::KeyGenerator> keygen;
  std::unique_ptr<bfv::Encryptor> client_enc;
  std::unique_ptr<bfv::Decryptor> dec;
  std::unique_ptr<bfv::Evaluator> eval;
  std::unique_ptr<bfv::Flooder> flooder;
  std::vector<u64> input;
  std::vector<std::int64_t> kernel;
  std::vector<std::vector<bfv::PreparedPlaintext>> prepared;  // [out block][in block]
  std::vector<Bytes> uploads, responses;

  Conv() {
    bfv::ParameterRequest r;
    r.t_bits = 41;
    r.max_l1_norm = 64.0 * 9 * 4096;
    ctx = bfv::BfvContext::create(bfv::select_parameters(r));
    layout = std::make_unique<bfv::ConvLayout>(shape, ctx->n());
    keygen = std::make_unique<rlwe::KeyGenerator>(ctx);
    client_enc = std::make_unique<bfv::Encryptor>(ctx, keygen->secret_key());
    dec = std::make_unique<bfv::Decryptor>(ctx, keygen->secret_key());
    eval = std::make_unique<bfv::Evaluator>(ctx);
    flooder = std::make_unique<bfv::Flooder>(ctx, keygen->create_public_key());
    std::mt19937_64 g(1);
    input.resize(64 * 32 * 32);
    for (auto& x : input) x = g() % ctx->t();
    kernel.resize(64 * 64 * 9);
    for (auto& w : kernel) w = static_cast<std::int64_t>(g() % 8191) - 4095;
    prepare();
    encrypt();
    serve();
  }
  void prepare() {
    prepared.assign(layout->output_blocks(), {});
    for (int o = 0; o < layout->output_blocks(); ++o)
      for (int b = 0; b < layout->input_blocks(); ++b)
        prepared[o].push_back(
            eval->prepare(bfv::Plaintext(*ctx, layout->encode_kernel(o, b, kernel, ctx->t()))));
  }
  void encrypt() {
    uploads.clear();
    for (int b = 0; b < layout->input_blocks(); ++b)
      uploads.push_back(bfv::save_ciphertext(
          *ctx, client_enc->encrypt(bfv::Plaintext(*ctx, layout->encode_input(b, input, ctx->t())))));
  }
  void serve() {
    std::vector<bfv::Ciphertext> in;
    for (const auto& u : uploads) in.push_back(bfv::load_ciphertext(*ctx, u));
    std::vector<const bfv::Ciphertext*> cp;
    for (const auto& c : in) cp.push_back(&c);
    responses.clear();
    for (int o = 0; o < layout->output_blocks(); ++o) {
      std::vector<const bfv::PreparedPlaintext*> wp;
      for (const auto& w : prepared[o]) wp.push_back(&w);
      auto acc = eval->multiply_accumulate(cp, wp);
      const auto idx = layout->output_indices(o);
      std::vector<u64> mask(ctx->n(), 0);
      for (auto i : idx) mask[i] = (i * 2654435761u) % ctx->t();
      eval->sub_plain_inplace(acc, bfv::Plaintext(*ctx, mask));
      responses.push_back(bfv::save_response(*ctx, flooder->finalize(std::move(acc), idx)));
    }
  }
  // The products alone (no flooding, switching or serialisation), to split the server time.
  void products() {
    std::vector<bfv::Ciphertext> in;
    for (const auto& u : uploads) in.push_back(bfv::load_ciphertext(*ctx, u));
    std::vector<const bfv::Ciphertext*> cp;
    for (const auto& c : in) cp.push_back(&c);
    for (int o = 0; o < layout->output_blocks(); ++o) {
      std::vector<const bfv::PreparedPlaintext*> wp;
      for (const auto& w : prepared[o]) wp.push_back(&w);
      benchmark::DoNotOptimize(eval->multiply_accumulate(cp, wp).data().data());
    }
  }
  void decrypt() {
    for (int o = 0; o < layout->output_blocks(); ++o)
      benchmark::DoNotOptimize(
          dec->decrypt(bfv::load_response(*ctx, responses[o], layout->output_indices(o))).data());
  }
  std::size_t bytes(const std::vector<Bytes>& v) const {
    std::size_t s = 0;
    for (const auto& b : v) s += b.size();
    return s;
  }
  void counters(benchmark::State& st) const {
    st.counters["log_n"] = ctx->log_n();
    st.counters["log_q"] = ctx->params().log_q();
    st.counters["primes"] = static_cast<double>(ctx->num_q());
    st.counters["response_primes"] = ctx->params().response_level + 1;
    st.counters["cts_up"] = layout->input_blocks();
    st.counters["cts_down"] = layout->output_blocks();
    st.counters["bytes_up"] = static_cast<double>(bytes(uploads));
    st.counters["bytes_down"] = static_cast<double>(bytes(responses));
  }
};

Conv& conv() {
  static Conv c;
  return c;
}

void BM_ConvClientEncrypt(benchmark::State& st) {
  Conv& c = conv();
  for (auto _ : st) c.encrypt();
  c.counters(st);
}
void BM_ConvServer(benchmark::State& st) {
  Conv& c = conv();
  for (auto _ : st) c.serve();
  c.counters(st);
  st.counters["products"] = c.layout->input_blocks() * c.layout->output_blocks();
}
void BM_ConvServerProductsOnly(benchmark::State& st) {
  Conv& c = conv();
  for (auto _ : st) c.products();
  st.counters["products"] = c.layout->input_blocks() * c.layout->output_blocks();
}
void BM_ConvClientDecrypt(benchmark::State& st) {
  Conv& c = conv();
  for (auto _ : st) c.decrypt();
  c.counters(st);
}
void BM_ConvServerPrepare(benchmark::State& st) {
  Conv& c = conv();
  for (auto _ : st) c.prepare();
  c.counters(st);
}

struct Beaver {
  bfv::ContextPtr ctx;
  std::unique_ptr<rlwe::KeyGenerator> keygen;
  std::unique_ptr<bfv::BatchEncoder> enc;
  std::unique_ptr<bfv::Encryptor> client_enc;
  std::unique_ptr<bfv::Decryptor> dec;
  std::unique_ptr<bfv::Evaluator> eval;
  std::unique_ptr<bfv::Flooder> flooder;
  std::vector<std::uint32_t> all;
  Beaver() {
    bfv::ParameterRequest r;
    r.t_bits = 41;
    ctx = bfv::BfvContext::create(bfv::select_parameters(r));
    keygen = std::make_unique<rlwe::KeyGenerator>(ctx);
    enc = std::make_unique<bfv::BatchEncoder>(ctx);
    client_enc = std::make_unique<bfv::Encryptor>(ctx, keygen->secret_key());
    dec = std::make_unique<bfv::Decryptor>(ctx, keygen->secret_key());
    eval = std::make_unique<bfv::Evaluator>(ctx);
    flooder = std::make_unique<bfv::Flooder>(ctx, keygen->create_public_key());
    for (std::uint32_t i = 0; i < ctx->n(); ++i) all.push_back(i);
  }
};

void BM_BeaverBatchHE(benchmark::State& st) {
  static Beaver b;
  const std::size_t n = b.ctx->n();
  std::mt19937_64 g(2);
  std::vector<u64> a_c(n), a_s(n), mask(n);
  for (std::size_t i = 0; i < n; ++i) {
    a_c[i] = g() % b.ctx->t();
    a_s[i] = g() % b.ctx->t();
    mask[i] = g() % b.ctx->t();
  }
  std::size_t up = 0, down = 0;
  for (auto _ : st) {
    const Bytes req = bfv::save_ciphertext(*b.ctx, b.client_enc->encrypt(b.enc->encode(a_c)));
    auto ct = bfv::load_ciphertext(*b.ctx, req);
    b.eval->multiply_plain_inplace(ct, b.eval->prepare(b.enc->encode(a_s)));
    b.eval->sub_plain_inplace(ct, b.enc->encode(mask));
    const Bytes resp = bfv::save_response(*b.ctx, b.flooder->finalize(std::move(ct), b.all));
    benchmark::DoNotOptimize(b.enc->decode(b.dec->decrypt(bfv::load_response(*b.ctx, resp, b.all))).data());
    up = req.size();
    down = resp.size();
  }
  st.counters["triples"] = static_cast<double>(n);
  st.counters["bytes_up"] = static_cast<double>(up);
  st.counters["bytes_down"] = static_cast<double>(down);
  st.counters["log_q"] = b.ctx->params().log_q();
  st.counters["triples_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_ConvClientEncrypt)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_ConvServer)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_ConvServerProductsOnly)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_ConvClientDecrypt)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_ConvServerPrepare)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_BeaverBatchHE)->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();
