#include "veil/bfv/serialize.hpp"

#include <cmath>

#include "veil/common/error.hpp"
#include "veil/rlwe/sampling.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::bfv {

using rlwe::ObjectType;

namespace {

int bits_of(u64 v) { return 64 - __builtin_clzll(v); }

}  // namespace

Bytes save_parameters(const BfvParameters& p) {
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(p.log_n));
  w.u32(static_cast<std::uint32_t>(p.flood_bits));
  w.u32(static_cast<std::uint32_t>(p.response_level));
  w.u64(p.t);
  w.f64(p.max_l1_norm);
  w.u32(static_cast<std::uint32_t>(p.q.size()));
  for (auto q : p.q) w.u64(q);
  return rlwe::finish_object(ObjectType::kBfvParameters, 0, 0, w);
}

BfvParameters load_parameters(std::span<const std::uint8_t> data, bool allow_insecure) {
  ByteReader r(data);
  rlwe::expect_object(r, nullptr, ObjectType::kBfvParameters);
  BfvParameters p;
  p.log_n = static_cast<int>(r.u32());
  p.flood_bits = static_cast<int>(r.u32());
  p.response_level = static_cast<int>(r.u32());
  p.t = r.u64();
  p.max_l1_norm = r.f64();
  const std::uint32_t nq = r.u32();
  VEIL_CHECK_IO(nq >= 1 && nq <= 64, "parameters list " << nq << " data primes (1..64)");
  r.need(8ull * nq);
  p.q.resize(nq);
  for (auto& q : p.q) q = r.u64();
  r.expect_end();
  p.dnum = 1;
  p.allow_insecure = allow_insecure;
  const std::string why = p.validate();
  VEIL_CHECK_IO(why.empty(), "invalid BFV parameters in file: " << why);
  return p;
}

Bytes save_ciphertext(const BfvContext& ctx, const Ciphertext& ct, bool compress) {
  rlwe::check_param_id(ctx, ct.param_id(), "ciphertext");
  VEIL_REQUIRE(ct.n() == ctx.n() && ct.size() == 2 && ct.level() <= ctx.max_level(),
               "ciphertext is not valid for these BFV parameters");
  const bool seeded = compress && ct.seed().has_value();
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(ct.level()));
  auto idx = rlwe::q_indices(ct.level());
  rlwe::write_poly(w, ctx, ct.poly(0), idx);
  if (seeded) {
    rlwe::write_seed(w, *ct.seed());
  } else {
    rlwe::write_poly(w, ctx, ct.poly(1), idx);
  }
  return rlwe::finish_object(ObjectType::kBfvCiphertext, seeded ? rlwe::kFlagCompressed : 0, ctx.param_id(),
                             w);
}

Ciphertext load_ciphertext(const BfvContext& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  const rlwe::ObjectHeader h = rlwe::expect_object(r, &ctx, ObjectType::kBfvCiphertext);
  const bool compressed = h.flags & rlwe::kFlagCompressed;
  const std::uint32_t level = r.u32();
  rlwe::check_level(ctx, level, "ciphertext");
  auto idx = rlwe::q_indices(static_cast<int>(level));
  const std::uint64_t per = rlwe::packed_bytes(ctx, idx);
  const std::uint64_t expected = compressed ? per + 32 : 2 * per;
  VEIL_CHECK_IO(r.remaining() == expected,
                "ciphertext body has " << r.remaining() << " bytes, expected " << expected);
  Ciphertext ct(ctx, 2, static_cast<int>(level));
  rlwe::read_poly(r, ctx, ct.poly(0), idx, "ciphertext");
  if (compressed) {
    const Seed seed = rlwe::read_seed(r);
    rlwe::expand_uniform(ctx, seed, 0, idx, ct.poly(1));
    ct.set_seed(seed);
  } else {
    rlwe::read_poly(r, ctx, ct.poly(1), idx, "ciphertext");
  }
  return ct;
}

Bytes save_plaintext(const BfvContext& ctx, const Plaintext& p) {
  check_plaintext(ctx, p, "plaintext");
  ByteWriter w;
  w.packed(p.coeffs(), static_cast<unsigned>(bits_of(ctx.t())));
  return rlwe::finish_object(ObjectType::kBfvPlaintext, 0, ctx.param_id(), w);
}

Plaintext load_plaintext(const BfvContext& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  rlwe::expect_object(r, &ctx, ObjectType::kBfvPlaintext);
  const std::uint64_t expected = (ctx.n() * static_cast<std::uint64_t>(bits_of(ctx.t())) + 7) / 8;
  VEIL_CHECK_IO(r.remaining() == expected,
                "plaintext body has " << r.remaining() << " bytes, expected " << expected);
  std::vector<u64> c(ctx.n());
  r.packed(c, static_cast<unsigned>(bits_of(ctx.t())));
  for (u64 v : c)
    VEIL_CHECK_IO(v < ctx.t(), "plaintext coefficient " << v << " is not below t = " << ctx.t());
  return Plaintext(ctx, std::move(c));
}

Bytes save_response(const BfvContext& ctx, const Response& resp) {
  rlwe::check_param_id(ctx, resp.param_id, "response");
  VEIL_REQUIRE(resp.level >= 0 && resp.level <= ctx.max_level() &&
                   resp.c1.size() == resp.num_limbs() * ctx.n() &&
                   resp.c0.size() == resp.num_limbs() * resp.indices.size(),
               "response is not valid for these BFV parameters");
  const std::size_t count = resp.indices.size();
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(resp.level));
  w.u32(static_cast<std::uint32_t>(count));
  for (std::size_t i = 0; i < resp.num_limbs(); ++i)
    w.packed(std::span<const u64>(resp.c0.data() + i * count, count),
             static_cast<unsigned>(ctx.modulus(i).bits()));
  rlwe::write_poly(w, ctx, resp.c1.data(), rlwe::q_indices(resp.level));
  return rlwe::finish_object(ObjectType::kBfvResponse, 0, ctx.param_id(), w);
}

Response load_response(const BfvContext& ctx, std::span<const std::uint8_t> data,
                       std::span<const std::uint32_t> indices) {
  for (auto i : indices) VEIL_REQUIRE(i < ctx.n(), "expected index " << i << " outside the ring");
  ByteReader r(data);
  rlwe::expect_object(r, &ctx, ObjectType::kBfvResponse);
  const std::uint32_t level = r.u32();
  rlwe::check_level(ctx, level, "response");
  const std::uint32_t count = r.u32();
  VEIL_CHECK_IO(count == indices.size(),
                "response carries " << count << " coefficients, the layout expects " << indices.size());
  auto idx = rlwe::q_indices(static_cast<int>(level));
  std::uint64_t expected = rlwe::packed_bytes(ctx, idx);
  for (auto i : idx) expected += (static_cast<std::uint64_t>(count) * ctx.modulus(i).bits() + 7) / 8;
  VEIL_CHECK_IO(r.remaining() == expected,
                "response body has " << r.remaining() << " bytes, expected " << expected);
  Response resp;
  resp.level = static_cast<int>(level);
  resp.param_id = ctx.param_id();
  resp.indices.assign(indices.begin(), indices.end());
  resp.c0.resize(resp.num_limbs() * count);
  resp.c1.resize(resp.num_limbs() * ctx.n());
  for (std::size_t i = 0; i < resp.num_limbs(); ++i) {
    const math::Modulus& q = ctx.modulus(i);
    std::span<u64> limb(resp.c0.data() + i * count, count);
    r.packed(limb, static_cast<unsigned>(q.bits()));
    for (u64 v : limb)
      VEIL_CHECK_IO(v < q.value(), "response: residue " << v << " is not below its prime " << q.value());
  }
  rlwe::read_poly(r, ctx, resp.c1.data(), idx, "response");
  return resp;
}

}  // namespace veil::bfv
