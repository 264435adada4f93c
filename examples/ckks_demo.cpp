// A short tour of the CKKS engine at 128-bit security: encrypt a vector, evaluate
// x^2 + 0.5*rotate(x, 1) - 0.25, decrypt, and report precision (bits) and timings.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/rlwe/keygen.hpp"

using namespace veil::ckks;
using veil::rlwe::GaloisKeys;
using veil::rlwe::KeyGenerator;
using veil::rlwe::PublicKey;
using veil::rlwe::RelinKeys;
using veil::rlwe::SecretKey;
using Clock = std::chrono::steady_clock;

namespace {
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}
}  // namespace

int main() {
  // N = 2^14 with a 60-bit base prime, six 40-bit primes and one 60-bit special prime:
  // log QP = 360 bits, within the 430-bit bound for 128-bit security.
  auto t = Clock::now();
  auto params = CkksParameters::create(14, {60, 40, 40, 40, 40, 40, 40}, {60}, 40, 7);
  auto ctx = CkksContext::create(params);
  std::printf("parameters   %s\n", params.describe().c_str());
  std::printf("threads      %d\n", veil::num_threads());
  std::printf("context      %8.1f ms\n", ms_since(t));

  t = Clock::now();
  KeyGenerator keygen(ctx);
  PublicKey pk = keygen.create_public_key();
  RelinKeys rk = keygen.create_relin_keys();
  GaloisKeys gk = keygen.create_galois_keys({1});
  std::printf("keygen       %8.1f ms  (relin key %zu KiB, rotation key %zu KiB, seed-compressed)\n",
              ms_since(t), save_relin_keys(*ctx, rk).size() / 1024, save_galois_keys(*ctx, gk).size() / 1024);

  CkksEncoder encoder(ctx);
  const std::size_t slots = ctx->max_slots();
  std::vector<double> x(slots);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (auto& v : x) v = dist(rng);

  t = Clock::now();
  Encryptor encryptor(ctx, pk);
  Ciphertext ct = encryptor.encrypt(encoder.encode(x, params.scale, ctx->max_level()));
  std::printf("encode+enc   %8.1f ms  (ciphertext %zu KiB)\n", ms_since(t),
              save_ciphertext(*ctx, ct).size() / 1024);

  t = Clock::now();
  Evaluator ev(ctx);
  Ciphertext rot = ev.rotate(ct, 1, gk);
  ev.multiply_relin_inplace(ct, ct, rk);
  ev.rescale_inplace(ct);
  // Encoding 0.5 at the input's scale makes both branches land on scale^2 / q_L.
  ev.multiply_const_inplace(rot, 0.5, params.scale);
  ev.rescale_inplace(rot);
  ev.add_inplace(ct, rot);
  ev.add_const_inplace(ct, -0.25);
  std::printf("evaluate     %8.1f ms  (square, relinearise, rotate, 2 rescales)\n", ms_since(t));

  t = Clock::now();
  Decryptor decryptor(ctx, keygen.secret_key());
  std::vector<double> y = encoder.decode_real(decryptor.decrypt(ct));
  std::printf("dec+decode   %8.1f ms\n", ms_since(t));

  double max_err = 0;
  for (std::size_t i = 0; i < slots; ++i) {
    const double want = x[i] * x[i] + 0.5 * x[(i + 1) % slots] - 0.25;
    max_err = std::max(max_err, std::fabs(y[i] - want));
  }
  std::printf("slots        %zu, first: %.6f (expected %.6f)\n", slots, y[0],
              x[0] * x[0] + 0.5 * x[1] - 0.25);
  std::printf("precision    max error %.3g = %.1f bits\n", max_err, -std::log2(max_err));
  return max_err < 1e-5 ? 0 : 1;
}
