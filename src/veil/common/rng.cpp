#include "veil/common/rng.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

#include "veil/common/error.hpp"

namespace veil {

namespace {
void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  VEIL_CHECK_IO(ok, "libsodium failed to initialise (no OS randomness available?)");
}
}  // namespace

Seed random_seed() {
  Seed s;
  random_bytes(s);
  return s;
}

void random_bytes(std::span<std::uint8_t> out) {
  ensure_sodium();
  randombytes_buf(out.data(), out.size());
}

Prng::Prng(const Seed& seed, std::uint64_t stream_id) : key_(seed) {
  ensure_sodium();
  std::memcpy(nonce_.data(), &stream_id, sizeof stream_id);
}

Prng::~Prng() {
  sodium_memzero(key_.data(), key_.size());
  sodium_memzero(buf_.data(), buf_.size());
}

void Prng::refill() {
  // 1 KiB = 16 ChaCha20 blocks per refill; the block counter keeps the stream contiguous.
  std::memset(buf_.data(), 0, buf_.size());
  crypto_stream_chacha20_ietf_xor_ic(buf_.data(), buf_.data(), buf_.size(), nonce_.data(), block_counter_,
                                     key_.data());
  VEIL_CHECK_IO(block_counter_ <= UINT32_MAX - 16, "PRNG stream exhausted");
  block_counter_ += static_cast<std::uint32_t>(buf_.size() / 64);
  pos_ = 0;
}

std::uint64_t Prng::next_u64() {
  if (pos_ + 8 > buf_.size()) refill();
  std::uint64_t v;
  std::memcpy(&v, buf_.data() + pos_, 8);
  pos_ += 8;
  return v;
}

double Prng::next_unit() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

void Prng::fill(std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    if (pos_ == buf_.size()) refill();
    const std::size_t n = std::min(out.size() - done, buf_.size() - pos_);
    std::memcpy(out.data() + done, buf_.data() + pos_, n);
    pos_ += n;
    done += n;
  }
}

}  // namespace veil
