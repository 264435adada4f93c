// Randomness. Fresh seeds come from libsodium's CSPRNG (the OS generator); expanding a
// seed into a long stream uses ChaCha20 (RFC 8439) keyed by the seed, so a uniform
// polynomial can be replaced by its 32-byte seed in serialised objects and re-expanded
// identically by the receiver.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace veil {

using Seed = std::array<std::uint8_t, 32>;

// 32 bytes from the operating system's CSPRNG (libsodium randombytes_buf).
Seed random_seed();
// Fills `out` from the operating system's CSPRNG.
void random_bytes(std::span<std::uint8_t> out);

// Deterministic ChaCha20 stream keyed by a seed. Not copyable: a copy would silently
// reuse the same stream.
class Prng {
 public:
  explicit Prng(const Seed& seed, std::uint64_t stream_id = 0);
  ~Prng();
  Prng(const Prng&) = delete;
  Prng& operator=(const Prng&) = delete;

  std::uint64_t next_u64();
  // Uniform double in [0, 1) with 53 random bits.
  double next_unit();
  void fill(std::span<std::uint8_t> out);

 private:
  void refill();
  Seed key_;
  std::array<std::uint8_t, 12> nonce_{};
  std::uint32_t block_counter_ = 0;
  std::array<std::uint8_t, 1024> buf_{};
  std::size_t pos_ = sizeof(buf_);
};

}  // namespace veil
