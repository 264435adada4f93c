#include "veil/common/bytes.hpp"

#include <gtest/gtest.h>

#include <random>

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

// The packed form against its definition, bit by bit: bit b of the stream is bit b % 8 of
// byte b / 8, value k holds bits [k * bits, (k + 1) * bits), the high bits of wider inputs
// are dropped, and the last byte's spare bits are zero. Lengths around the accumulator's
// eight-byte steps.
TEST(Bytes, PackedLayoutMatchesDefinition) {
  std::mt19937_64 g(2);
  for (unsigned bits : {1u, 3u, 7u, 8u, 13u, 32u, 33u, 40u, 45u, 52u, 61u, 63u, 64u}) {
    for (std::size_t count : {0u, 1u, 7u, 8u, 9u, 64u, 65u, 1000u}) {
      std::vector<std::uint64_t> v(count);
      for (auto& x : v) x = g();  // wider than `bits`: the writer keeps the low bits
      ByteWriter w;
      w.packed(v, bits);
      const auto buf = w.take();
      ASSERT_EQ(buf.size(), (count * bits + 7) / 8);
      for (std::size_t b = 0; b < buf.size() * 8; ++b) {
        const int want = b < count * bits ? static_cast<int>((v[b / bits] >> (b % bits)) & 1) : 0;
        ASSERT_EQ((buf[b / 8] >> (b % 8)) & 1, want) << bits << " bits, " << count << " values, bit " << b;
      }
      ByteReader r(buf);
      std::vector<std::uint64_t> back(count);
      r.packed(back, bits);
      for (std::size_t k = 0; k < count; ++k)
        ASSERT_EQ(back[k], bits == 64 ? v[k] : v[k] & ((std::uint64_t{1} << bits) - 1))
            << bits << " bits, " << k;
      r.expect_end();
    }
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

}  // namespace
}  // namespace veil
