#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"

#include <cmath>
#include <cstring>

#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::ckks {

using rlwe::check_level;
using rlwe::expand_uniform;
using rlwe::kFlagCompressed;
using rlwe::ObjectHeader;
using rlwe::ObjectType;
using rlwe::packed_bytes;
using rlwe::q_indices;
using rlwe::read_poly;
using rlwe::read_seed;
using rlwe::write_poly;
using rlwe::write_seed;

namespace {

void check_meta(const CkksContext& ctx, double scale, std::uint64_t slots, const char* what) {
  VEIL_CHECK_IO(std::isfinite(scale) && scale >= 1.0 && scale < std::ldexp(1.0, 4000),
                what << " has an invalid scale");
  VEIL_CHECK_IO(slots >= 1 && slots <= ctx.max_slots() && (slots & (slots - 1)) == 0,
                what << " has an invalid slot count " << slots);
}

}  // namespace

Bytes save_parameters(const CkksParameters& p) {
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(p.log_n));
  w.u32(static_cast<std::uint32_t>(p.dnum));
  w.f64(p.scale);
  w.u32(static_cast<std::uint32_t>(p.q.size()));
  w.u32(static_cast<std::uint32_t>(p.p.size()));
  for (auto q : p.q) w.u64(q);
  for (auto q : p.p) w.u64(q);
  return rlwe::finish_object(ObjectType::kParameters, 0, 0, w);
}

CkksParameters load_parameters(std::span<const std::uint8_t> data, bool allow_insecure) {
  ByteReader r(data);
  rlwe::expect_object(r, nullptr, ObjectType::kParameters);
  CkksParameters p;
  p.log_n = static_cast<int>(r.u32());
  p.dnum = static_cast<int>(r.u32());
  p.scale = r.f64();
  const std::uint32_t nq = r.u32(), np = r.u32();
  VEIL_CHECK_IO(nq >= 1 && nq <= 64 && np >= 1 && np <= 64,
                "parameters list " << nq << " data and " << np << " special primes (1..64 each)");
  r.need(8ull * (nq + np));
  p.q.resize(nq);
  p.p.resize(np);
  for (auto& q : p.q) q = r.u64();
  for (auto& q : p.p) q = r.u64();
  r.expect_end();
  p.allow_insecure = allow_insecure;
  const std::string why = p.validate();
  VEIL_CHECK_IO(why.empty(), "invalid parameters in file: " << why);
  return p;
}

Bytes save_plaintext(const CkksContext& ctx, const Plaintext& pt) {
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(pt.level()));
  w.f64(pt.scale());
  w.u64(pt.slots());
  write_poly(w, ctx, pt.data().data(), q_indices(pt.level()));
  return rlwe::finish_object(ObjectType::kPlaintext, 0, ctx.param_id(), w);
}

Plaintext load_plaintext(const CkksContext& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  rlwe::expect_object(r, &ctx, ObjectType::kPlaintext);
  const std::uint32_t level = r.u32();
  check_level(ctx, level, "plaintext");
  const double scale = r.f64();
  const std::uint64_t slots = r.u64();
  check_meta(ctx, scale, slots, "plaintext");
  auto idx = q_indices(static_cast<int>(level));
  VEIL_CHECK_IO(r.remaining() == packed_bytes(ctx, idx), "plaintext body has the wrong length");
  Plaintext pt(ctx, static_cast<int>(level), scale, slots);
  read_poly(r, ctx, pt.data().data(), idx, "plaintext");
  return pt;
}

Bytes save_ciphertext(const CkksContext& ctx, const Ciphertext& ct, bool compress) {
  VEIL_REQUIRE(ct.n() == ctx.n() && ct.size() >= 2 && ct.level() <= ctx.max_level(),
               "ciphertext is not valid for these encryption parameters");
  const bool seeded = compress && ct.seed().has_value() && ct.size() == 2;
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(ct.size()));
  w.u32(static_cast<std::uint32_t>(ct.level()));
  w.f64(ct.scale());
  w.u64(ct.slots());
  auto idx = q_indices(ct.level());
  write_poly(w, ctx, ct.poly(0), idx);
  if (seeded) {
    write_seed(w, *ct.seed());
  } else {
    for (std::size_t c = 1; c < ct.size(); ++c) write_poly(w, ctx, ct.poly(c), idx);
  }
  return rlwe::finish_object(ObjectType::kCiphertext, seeded ? kFlagCompressed : 0, ctx.param_id(), w);
}

Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  const ObjectHeader h = rlwe::expect_object(r, &ctx, ObjectType::kCiphertext);
  const bool compressed = h.flags & kFlagCompressed;
  const std::uint32_t size = r.u32();
  VEIL_CHECK_IO(size == 2 || size == 3, "ciphertext has " << size << " polynomials (2 or 3 expected)");
  VEIL_CHECK_IO(!compressed || size == 2, "a seed-compressed ciphertext must have 2 polynomials");
  const std::uint32_t level = r.u32();
  check_level(ctx, level, "ciphertext");
  const double scale = r.f64();
  const std::uint64_t slots = r.u64();
  check_meta(ctx, scale, slots, "ciphertext");
  auto idx = q_indices(static_cast<int>(level));
  const std::uint64_t per = packed_bytes(ctx, idx);
  const std::uint64_t expected = compressed ? per + 32 : per * size;
  VEIL_CHECK_IO(r.remaining() == expected,
                "ciphertext body has " << r.remaining() << " bytes, expected " << expected);
  Ciphertext ct(ctx, size, static_cast<int>(level), scale, slots);
  read_poly(r, ctx, ct.poly(0), idx, "ciphertext");
  if (compressed) {
    const Seed seed = read_seed(r);
    expand_uniform(ctx, seed, 0, idx, ct.poly(1));
    ct.set_seed(seed);
  } else {
    for (std::size_t c = 1; c < size; ++c) read_poly(r, ctx, ct.poly(c), idx, "ciphertext");
  }
  return ct;
}

}  // namespace veil::ckks
