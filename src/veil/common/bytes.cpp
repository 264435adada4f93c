#include "veil/common/bytes.hpp"

#include <algorithm>

namespace veil {

namespace {

// The packed form is a little-endian bit stream: bit b is bit b % 8 of byte b / 8, and
// value k takes bits [k * bits, (k + 1) * bits). A 128-bit accumulator moves eight bytes
// at a time (keys of a deep network are gigabytes of 33-bit residues; the byte-at-a-time
// loop this replaces was a tenth of `veil keygen`).
using Acc = unsigned __int128;

std::uint64_t width_mask(unsigned bits) {
  return bits == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

}  // namespace

void ByteWriter::packed(std::span<const std::uint64_t> v, unsigned bits) {
  VEIL_REQUIRE(bits >= 1 && bits <= 64, "packed width must be 1..64 bits, got " << bits);
  const std::size_t start = buf_.size();
  buf_.resize(start + (v.size() * bits + 7) / 8);
  std::uint8_t* out = buf_.data() + start;
  const std::uint64_t mask = width_mask(bits);
  Acc acc = 0;
  unsigned have = 0;  // bits in acc, below 64 between values
  for (std::uint64_t x : v) {
    acc |= static_cast<Acc>(x & mask) << have;
    have += bits;
    if (have >= 64) {
      for (int i = 0; i < 8; ++i) *out++ = static_cast<std::uint8_t>(acc >> (8 * i));
      acc >>= 64;
      have -= 64;
    }
  }
  for (; have > 0; have = have > 8 ? have - 8 : 0, acc >>= 8) *out++ = static_cast<std::uint8_t>(acc);
}

void ByteReader::packed(std::span<std::uint64_t> out, unsigned bits) {
  VEIL_CHECK_IO(bits >= 1 && bits <= 64, "packed width must be 1..64 bits, got " << bits);
  const std::size_t nbytes = (out.size() * bits + 7) / 8;
  const auto in = view(nbytes);
  const std::uint64_t mask = width_mask(bits);
  Acc acc = 0;
  unsigned have = 0;
  std::size_t next = 0;
  for (auto& x : out) {
    if (have < bits) {  // eight more bytes (or the last few): the stream holds every value's bits
      const std::size_t take = std::min<std::size_t>(8, nbytes - next);
      std::uint64_t w = 0;
      for (std::size_t i = 0; i < take; ++i) w |= static_cast<std::uint64_t>(in[next + i]) << (8 * i);
      acc |= static_cast<Acc>(w) << have;
      have += static_cast<unsigned>(8 * take);
      next += take;
    }
    x = static_cast<std::uint64_t>(acc) & mask;
    acc >>= bits;
    have -= bits;
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
