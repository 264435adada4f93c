#include "veil/common/bytes.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace veil {

namespace {

// The packed form is a little-endian bit stream: bit b is bit b % 8 of byte b / 8, and
// value k takes bits [k * bits, (k + 1) * bits). A 64-bit accumulator moves eight bytes
// at a time (keys of a deep network are gigabytes of 33-bit residues, and the hybrid
// preprocessing sends 200 MB an image: the byte-at-a-time loop this replaces was a tenth
// of `veil keygen`, a 128-bit accumulator still 7% of the preprocessing).
std::uint64_t width_mask(unsigned bits) {
  return bits == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

void store_le64(std::uint8_t* p, std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &v, 8);
  } else {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
}

// Up to eight bytes (fewer at the end of the stream), little-endian.
std::uint64_t load_le(const std::uint8_t* p, std::size_t bytes) {
  if (std::endian::native == std::endian::little && bytes == 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

void ByteWriter::packed(std::span<const std::uint64_t> v, unsigned bits) {
  VEIL_REQUIRE(bits >= 1 && bits <= 64, "packed width must be 1..64 bits, got " << bits);
  const std::size_t start = buf_.size();
  buf_.resize(start + (v.size() * bits + 7) / 8);
  std::uint8_t* out = buf_.data() + start;
  const std::uint64_t mask = width_mask(bits);
  std::uint64_t acc = 0;
  unsigned have = 0;  // bits in acc, below 64 between values
  for (std::uint64_t x : v) {
    x &= mask;
    acc |= x << have;
    if (have + bits >= 64) {
      store_le64(out, acc);
      out += 8;
      const unsigned used = 64 - have;  // of x's bits, 1..64
      acc = used < 64 ? x >> used : 0;
      have = have + bits - 64;
    } else {
      have += bits;
    }
  }
  for (; have > 0; have = have > 8 ? have - 8 : 0, acc >>= 8) *out++ = static_cast<std::uint8_t>(acc);
}

void ByteReader::packed(std::span<std::uint64_t> out, unsigned bits) {
  VEIL_CHECK_IO(bits >= 1 && bits <= 64, "packed width must be 1..64 bits, got " << bits);
  const std::size_t nbytes = (out.size() * bits + 7) / 8;
  const auto in = view(nbytes);
  const std::uint64_t mask = width_mask(bits);
  std::uint64_t acc = 0;
  unsigned have = 0;  // bits in acc, below 64
  std::size_t next = 0;
  for (auto& x : out) {
    if (have >= bits) {
      x = acc & mask;
      acc = bits < 64 ? acc >> bits : 0;
      have -= bits;
      continue;
    }
    // Eight more bytes (or the last few): the stream holds every value's bits.
    const std::size_t take = std::min<std::size_t>(8, nbytes - next);
    const std::uint64_t w = load_le(in.data() + next, take);
    next += take;
    x = (acc | (w << have)) & mask;
    const unsigned used = bits - have;  // of w's bits, 1..64
    acc = used < 64 ? w >> used : 0;
    have = static_cast<unsigned>(8 * take) - used;
  }
}

std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * bytes.size());
  for (std::uint8_t b : bytes) s += kDigits[b >> 4], s += kDigits[b & 15];
  return s;
}

}  // namespace veil
