// Serialisation round trips and hostile loads: truncated, padded, other parameters, wrong
// object type, residues at or above their prime, absurd counts.
#include <gtest/gtest.h>

#include "bfv_test_util.hpp"
#include "veil/bfv/serialize.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::test {
namespace {

template <class F>
std::string io_error(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no exception)";
}

TEST(BfvSerialize, RoundTrips) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  const auto m = random_mod(n, f.t(), g);
  const bfv::Plaintext p(*f.ctx, m);
  // Parameters.
  const auto prm = bfv::load_parameters(bfv::save_parameters(f.ctx->params()), true);
  EXPECT_EQ(prm.q, f.ctx->params().q);
  EXPECT_EQ(prm.t, f.t());
  EXPECT_EQ(prm.response_level, f.ctx->params().response_level);
  EXPECT_EQ(prm.max_l1_norm, f.ctx->params().max_l1_norm);
  // Plaintext.
  EXPECT_EQ(bfv::load_plaintext(*f.ctx, bfv::save_plaintext(*f.ctx, p)).coeffs(), m);
  // Ciphertexts: seed-compressed (secret key) is about half of the full one (public key).
  const auto sk_ct = f.sk_enc->encrypt(p), pk_ct = f.pk_enc->encrypt(p);
  const auto sk_bytes = bfv::save_ciphertext(*f.ctx, sk_ct), pk_bytes = bfv::save_ciphertext(*f.ctx, pk_ct);
  EXPECT_LT(sk_bytes.size() * 10, pk_bytes.size() * 6);
  EXPECT_EQ(f.dec->decrypt(bfv::load_ciphertext(*f.ctx, sk_bytes)).coeffs(), m);
  EXPECT_EQ(f.dec->decrypt(bfv::load_ciphertext(*f.ctx, pk_bytes)).coeffs(), m);
  // Response: c1 in full plus only the chosen c0 coefficients, no indices on the wire.
  std::vector<std::uint32_t> idx = {5, 9, 100, 1023};
  const auto resp = f.flooder->finalize(sk_ct, idx);
  const auto bytes = bfv::save_response(*f.ctx, resp);
  const std::size_t q0_bits = static_cast<std::size_t>(f.ctx->modulus(0).bits());
  EXPECT_EQ(bytes.size(), rlwe::kHeaderSize + 8 + (n * q0_bits + 7) / 8 + (idx.size() * q0_bits + 7) / 8);
  const auto back = bfv::load_response(*f.ctx, bytes, idx);
  const auto got = f.dec->decrypt(back);
  for (std::size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(got[k], m[idx[k]]);
}

TEST(BfvSerialize, HostileLoads) {
  BfvFixture f(toy_params()), other(toy_params(4096, 11));
  const std::size_t n = f.ctx->n();
  const bfv::Plaintext p(*f.ctx, {1, 2, 3});
  const auto ct_full = bfv::save_ciphertext(*f.ctx, f.pk_enc->encrypt(p));
  const auto ct_seeded = bfv::save_ciphertext(*f.ctx, f.sk_enc->encrypt(p));
  // Truncated and padded.
  for (const auto* b : {&ct_full, &ct_seeded}) {
    auto cut = *b;
    cut.resize(cut.size() - 1);
    EXPECT_NE(io_error([&] { bfv::load_ciphertext(*f.ctx, cut); }).find("does not match"), std::string::npos);
    auto pad = *b;
    pad.push_back(0);
    EXPECT_NE(io_error([&] { bfv::load_ciphertext(*f.ctx, pad); }).find("does not match"), std::string::npos);
    cut.resize(10);
    EXPECT_NE(io_error([&] { bfv::load_ciphertext(*f.ctx, cut); }).find("too short"), std::string::npos);
  }
  // Other parameters and wrong type.
  EXPECT_NE(io_error([&] { bfv::load_ciphertext(*other.ctx, ct_full); }).find("other encryption parameters"),
            std::string::npos);
  EXPECT_NE(io_error([&] { bfv::load_plaintext(*f.ctx, ct_full); }).find("expected BFV plaintext"),
            std::string::npos);
  // A residue equal to its prime: overwrite the first packed c0 residue with q_0 (46 bits).
  {
    auto bad = ct_full;
    const u64 q0 = f.ctx->modulus(0).value();
    const std::size_t at = rlwe::kHeaderSize + 4;
    for (int byte = 0; byte < 6; ++byte) bad[at + byte] = static_cast<std::uint8_t>(q0 >> (8 * byte));
    bad[at + 5] = static_cast<std::uint8_t>((bad[at + 5] & 0xc0) | ((q0 >> 40) & 0x3f));
    EXPECT_NE(io_error([&] { bfv::load_ciphertext(*f.ctx, bad); }).find("not below its prime"),
              std::string::npos);
  }
  // Absurd level.
  {
    auto bad = ct_full;
    bad[rlwe::kHeaderSize] = 0xff;
    bad[rlwe::kHeaderSize + 3] = 0x7f;
    EXPECT_NE(io_error([&] { bfv::load_ciphertext(*f.ctx, bad); }).find("level"), std::string::npos);
  }
  // Responses: a count other than the layout's, an absurd count, truncation.
  std::vector<std::uint32_t> idx = {1, 2, 3};
  const auto resp = bfv::save_response(*f.ctx, f.flooder->finalize(f.sk_enc->encrypt(p), idx));
  EXPECT_NE(io_error([&] {
              bfv::load_response(*f.ctx, resp, std::vector<std::uint32_t>{1, 2});
            }).find("the layout expects 2"),
            std::string::npos);
  {
    auto bad = resp;
    for (int byte = 0; byte < 4; ++byte) bad[rlwe::kHeaderSize + 4 + byte] = 0xff;
    EXPECT_NE(io_error([&] { bfv::load_response(*f.ctx, bad, idx); }).find("carries 4294967295"),
              std::string::npos);
    auto cut = resp;
    cut.resize(cut.size() - 8);
    EXPECT_NE(io_error([&] { bfv::load_response(*f.ctx, cut, idx); }).find("does not match"),
              std::string::npos);
  }
  // Plaintext coefficients at or above t.
  {
    std::vector<u64> c(n, f.t() - 1);
    auto bytes = bfv::save_plaintext(*f.ctx, bfv::Plaintext(*f.ctx, c));
    // 20-bit t: all-ones 20-bit fields are 2^20 - 1 >= t.
    for (std::size_t i = rlwe::kHeaderSize; i < bytes.size(); ++i) bytes[i] = 0xff;
    EXPECT_NE(io_error([&] { bfv::load_plaintext(*f.ctx, bytes); }).find("not below t"), std::string::npos);
  }
  // Parameters: insecure ones need the loader's opt-in; garbage prime counts are refused.
  const auto pb = bfv::save_parameters(f.ctx->params());
  EXPECT_NE(io_error([&] { bfv::load_parameters(pb); }).find("128-bit"), std::string::npos);
  {
    auto bad = pb;
    // nq sits after log_n, flood_bits, response_level (3 x u32), t (u64), L1 (f64).
    for (int byte = 0; byte < 4; ++byte) bad[rlwe::kHeaderSize + 28 + byte] = 0xff;
    EXPECT_NE(io_error([&] { bfv::load_parameters(bad, true); }).find("data primes"), std::string::npos);
  }
}

// Random corruption of valid objects (flipped bytes, truncation, appended bytes): a load
// either succeeds or throws std::runtime_error naming the problem -- never another error,
// a crash or an allocation driven by a corrupt size (ASan runs this suite too).
TEST(BfvSerialize, RandomCorruptionIsRefusedCleanly) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const bfv::Plaintext p(*f.ctx, {1, 2, 3});
  std::vector<std::uint32_t> idx = {1, 2, 3, 700};
  const std::vector<Bytes> objects = {
      bfv::save_ciphertext(*f.ctx, f.sk_enc->encrypt(p)), bfv::save_ciphertext(*f.ctx, f.pk_enc->encrypt(p)),
      bfv::save_response(*f.ctx, f.flooder->finalize(f.sk_enc->encrypt(p), idx)),
      bfv::save_plaintext(*f.ctx, p), bfv::save_parameters(f.ctx->params())};
  int refused = 0;
  for (int rep = 0; rep < 400; ++rep) {
    const std::size_t which = rep % objects.size();
    Bytes b = objects[which];
    switch (g() % 3) {
      case 0:
        for (int k = 0; k < 1 + static_cast<int>(g() % 4); ++k)
          b[g() % b.size()] ^= static_cast<std::uint8_t>(1 + g() % 255);
        break;
      case 1:
        b.resize(g() % b.size());
        break;
      default:
        b.push_back(static_cast<std::uint8_t>(g()));
        break;
    }
    try {
      switch (which) {
        case 0:
        case 1:
          bfv::load_ciphertext(*f.ctx, b);
          break;
        case 2:
          bfv::load_response(*f.ctx, b, idx);
          break;
        case 3:
          bfv::load_plaintext(*f.ctx, b);
          break;
        default:
          bfv::load_parameters(b, true);
          break;
      }
    } catch (const std::runtime_error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 200);
}

// The same primes under another t (or another flooding bound) are other parameters.
TEST(BfvSerialize, ParameterIdBindsThePlaintextModulus) {
  const auto p1 = toy_params();
  auto p2 = p1;
  p2.t = bfv::plaintext_prime(19, 10);
  auto p3 = p1;
  p3.max_l1_norm = 2048;
  BfvFixture f1(p1), f2(p2), f3(p3);
  EXPECT_NE(f1.ctx->param_id(), f2.ctx->param_id());
  EXPECT_NE(f1.ctx->param_id(), f3.ctx->param_id());
  const auto bytes = bfv::save_ciphertext(*f1.ctx, f1.sk_enc->encrypt(bfv::Plaintext(*f1.ctx, {1})));
  EXPECT_NE(io_error([&] { bfv::load_ciphertext(*f2.ctx, bytes); }).find("other encryption parameters"),
            std::string::npos);
}

}  // namespace
}  // namespace veil::test
