#include "veil/mpc/channel_exchange.hpp"

#include <bit>
#include <cstring>

#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"

namespace veil::mpc {

ChannelExchange::ChannelExchange(net::Channel& channel, Role role, const Field& field,
                                 std::uint16_t frame_type)
    : channel_(channel), role_(role), field_(field), type_(frame_type) {}

namespace {

unsigned bits_of(const Field& f, int r) { return static_cast<unsigned>(std::bit_width(f.p(r) - 1)); }

using u128 = unsigned __int128;

// The bytes of ByteWriter::packed (values LSB first, little-endian, the last byte
// zero-padded), written a 64-bit word at a time instead of a byte at a time: packing ran
// as long as the online stage's arithmetic.
void pack(ByteWriter& w, std::span<const u64> v, unsigned bits) {
  if constexpr (std::endian::native != std::endian::little) return w.packed(v, bits);
  std::vector<std::uint8_t> out((v.size() * bits + 7) / 8 + 8, 0);
  const u64 mask = bits == 64 ? ~u64{0} : (u64{1} << bits) - 1;
  u128 acc = 0;
  unsigned n = 0;
  std::size_t pos = 0;
  for (u64 x : v) {
    acc |= static_cast<u128>(x & mask) << n;
    n += bits;
    if (n >= 64) {
      const u64 word = static_cast<u64>(acc);
      std::memcpy(out.data() + pos, &word, 8);
      pos += 8;
      acc >>= 64;
      n -= 64;
    }
  }
  const u64 word = static_cast<u64>(acc);
  std::memcpy(out.data() + pos, &word, 8);
  w.raw(out.data(), (v.size() * bits + 7) / 8);
}

// The inverse, reading what ByteReader::packed reads.
void unpack(ByteReader& r, std::span<u64> out, unsigned bits) {
  if constexpr (std::endian::native != std::endian::little) return r.packed(out, bits);
  const std::span<const std::uint8_t> in = r.view((out.size() * bits + 7) / 8);
  const u64 mask = bits == 64 ? ~u64{0} : (u64{1} << bits) - 1;
  u128 acc = 0;
  unsigned n = 0;
  std::size_t pos = 0;
  for (auto& x : out) {
    if (n < bits) {
      if (pos + 8 <= in.size()) {
        u64 word;
        std::memcpy(&word, in.data() + pos, 8);
        acc |= static_cast<u128>(word) << n;
        n += 64;
        pos += 8;
      } else {
        while (n < bits) {  // the tail: fewer than 8 bytes left
          acc |= static_cast<u128>(in[pos++]) << n;
          n += 8;
        }
      }
    }
    x = static_cast<u64>(acc) & mask;
    acc >>= bits;
    n -= bits;
  }
}

}  // namespace

void ChannelExchange::send(std::span<const u64> v) {
  ByteWriter w;
  w.u64(v.size());
  if (field_.words() == 1) {
    pack(w, v, bits_of(field_, 0));
  } else {
    // Residue by residue, each at its own prime's width.
    check_words(field_, v.size(), "share exchange");
    std::vector<u64> part(v.size() / 2);
    for (int r = 0; r < 2; ++r) {
      for (std::size_t i = 0; i < part.size(); ++i) part[i] = v[2 * i + static_cast<std::size_t>(r)];
      pack(w, part, bits_of(field_, r));
    }
  }
  channel_.send(type_, w.buffer());
}

std::vector<u64> ChannelExchange::receive(std::size_t expect) {
  const net::Frame f = channel_.receive();
  VEIL_CHECK_IO(f.type == type_, "share exchange: expected message type " << type_ << ", got " << f.type);
  ByteReader r(f.payload);
  const std::uint64_t n = r.u64();
  VEIL_CHECK_IO(n == expect, "share exchange: peer sent " << n << " values, expected " << expect);
  VEIL_CHECK_IO(n % static_cast<std::uint64_t>(field_.words()) == 0,
                "share exchange: peer sent " << n << " words, not whole elements");
  std::vector<u64> v(expect);
  if (field_.words() == 1) {
    unpack(r, v, bits_of(field_, 0));
  } else {
    std::vector<u64> part(v.size() / 2);
    for (int k = 0; k < 2; ++k) {
      unpack(r, part, bits_of(field_, k));
      for (std::size_t i = 0; i < part.size(); ++i) v[2 * i + static_cast<std::size_t>(k)] = part[i];
    }
  }
  r.expect_end();
  VEIL_CHECK_IO(in_field(field_, v), "share exchange: peer sent a value outside Z_p");
  return v;
}

std::vector<u64> ChannelExchange::swap(std::span<const u64> mine, std::size_t expect) {
  if (role_ == Role::kServer) {
    send(mine);
    return receive(expect);
  }
  auto peer = receive(expect);
  send(mine);
  return peer;
}

}  // namespace veil::mpc
