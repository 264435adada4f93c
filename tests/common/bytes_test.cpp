#include "veil/common/bytes.hpp"

#include <gtest/gtest.h>

#include <random>

#include "veil/common/rng.hpp"

namespace veil {
namespace {

TEST(Bytes, PackedRoundTripEveryWidth) {
  std::mt19937_64 g(1);
  for (unsigned bits = 1; bits <= 64; ++bits) {
    std::vector<std::uint64_t> v(37);
    const std::uint64_t mask = bits == 64 ? ~0ull : ((1ull << bits) - 1);
    for (auto& x : v) x = g() & mask;
    ByteWriter w;
    w.u8(0xAB);
    w.packed(v, bits);
    EXPECT_EQ(w.size(), 1 + (v.size() * bits + 7) / 8);
    auto buf = w.take();
    ByteReader r(buf);
    EXPECT_EQ(r.u8(), 0xAB);
    std::vector<std::uint64_t> back(v.size());
    r.packed(back, bits);
    EXPECT_EQ(back, v) << "bits=" << bits;
    r.expect_end();
  }
}

TEST(Bytes, ReaderRejectsTruncationAndOversizedStrings) {
  ByteWriter w;
  w.u32(5);
  w.raw("ab", 2);
  auto buf = w.take();
  ByteReader r(buf);
  EXPECT_THROW(r.str(100), std::runtime_error);  // claims 5 bytes, only 2 present
  ByteReader r2(buf);
  EXPECT_THROW(r2.str(4), std::runtime_error);  // over the caller's limit
  ByteReader r3(std::span<const std::uint8_t>(buf.data(), 3));
  EXPECT_THROW(r3.u32(), std::runtime_error);
}

TEST(Rng, SeededStreamsAreReproducibleAndDistinct) {
  const Seed s = random_seed();
  Prng a(s, 0), b(s, 0), c(s, 1);
  std::vector<std::uint64_t> va, vb, vc;
  for (int i = 0; i < 300; ++i) {
    va.push_back(a.next_u64());
    vb.push_back(b.next_u64());
    vc.push_back(c.next_u64());
  }
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  EXPECT_NE(random_seed(), random_seed());
}

}  // namespace
}  // namespace veil
