// Randomness. Fresh seeds come from libsodium's CSPRNG (the OS generator); expanding a
// seed into a long stream uses ChaCha20 (RFC 8439) keyed by the seed, so a uniform
// polynomial can be replaced by its 32-byte seed in serialised objects and re-expanded
// identically by the receiver. The stream is OpenSSL's ChaCha20 (libcrypto), the same
// RFC 8439 keystream as libsodium's crypto_stream_chacha20_ietf (tests/common compares
// them), three times as fast on a CPU with AVX-512: 6.3 GB/s against 2.1 on a Zen 4 core,
// where the hybrid preprocessing spent a tenth of its time in libsodium's.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
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

  // Inline: the samplers draw one word per coefficient, tens of millions an inference.
  std::uint64_t next_u64() {
    if (pos_ + 8 > buf_.size()) refill();
    std::uint64_t v;
    std::memcpy(&v, buf_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }
  // Uniform double in [0, 1) with 53 random bits.
  double next_unit();
  void fill(std::span<std::uint8_t> out);

 private:
  void refill();
  void* cipher_ = nullptr;  // OpenSSL's EVP_CIPHER_CTX, keyed by the seed and stream id
  std::uint32_t block_counter_ = 0;
  // 4 KiB = 64 ChaCha20 blocks per refill: OpenSSL's AVX-512 code takes 16 at a time.
  std::array<std::uint8_t, 4096> buf_{};
  std::size_t pos_ = sizeof(buf_);
};

}  // namespace veil
