#include "veil/common/bytes.hpp"

namespace veil {

void ByteWriter::packed(std::span<const std::uint64_t> v, unsigned bits) {
  VEIL_REQUIRE(bits >= 1 && bits <= 64, "packed width must be 1..64 bits, got " << bits);
  const std::size_t start = buf_.size();
  buf_.resize(start + (v.size() * bits + 7) / 8, 0);
  std::uint8_t* out = buf_.data() + start;
  std::size_t bitpos = 0;
  for (std::uint64_t x : v) {
    unsigned left = bits;
    while (left > 0) {
      const unsigned off = bitpos & 7;
      const unsigned take = std::min(8u - off, left);
      out[bitpos >> 3] |= static_cast<std::uint8_t>((x & ((1u << take) - 1)) << off);
      x >>= take;
      left -= take;
      bitpos += take;
    }
  }
}

void ByteReader::packed(std::span<std::uint64_t> out, unsigned bits) {
  VEIL_CHECK_IO(bits >= 1 && bits <= 64, "packed width must be 1..64 bits, got " << bits);
  const std::size_t nbytes = (out.size() * bits + 7) / 8;
  auto in = view(nbytes);
  std::size_t bitpos = 0;
  for (auto& x : out) {
    std::uint64_t v = 0;
    unsigned got = 0;
    while (got < bits) {
      const unsigned off = bitpos & 7;
      const unsigned take = std::min(8u - off, bits - got);
      v |= static_cast<std::uint64_t>((in[bitpos >> 3] >> off) & ((1u << take) - 1)) << got;
      got += take;
      bitpos += take;
    }
    x = v;
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
