#include "veil/common/rng.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
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

namespace {
// ChaCha20, fetched once: a fetch per stream would look the algorithm up in OpenSSL's
// provider tables thousands of times an inference.
const EVP_CIPHER* chacha20() {
  static EVP_CIPHER* c = [] {
    // No cleanup at exit: OpenSSL's atexit handler would run before the thread pool's
    // static destructor joins its workers, whose per-thread OpenSSL state then had no
    // destructor left to free it (LeakSanitizer in scripts/fuzz.sh reported it). What
    // OpenSSL keeps stays reachable from its globals until the process ends.
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
    return EVP_CIPHER_fetch(nullptr, "ChaCha20", nullptr);
  }();
  VEIL_CHECK_IO(c != nullptr, "OpenSSL has no ChaCha20 (libcrypto's default provider is missing)");
  return c;
}
}  // namespace

Prng::Prng(const Seed& seed, std::uint64_t stream_id) {
  ensure_sodium();
  // OpenSSL's 16-byte IV is RFC 8439's initial state words 12..15: the 32-bit block
  // counter (0), then the 96-bit nonce, whose first 8 bytes hold the stream id.
  std::array<std::uint8_t, 16> iv{};
  std::memcpy(iv.data() + 4, &stream_id, sizeof stream_id);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  VEIL_CHECK_IO(ctx != nullptr, "out of memory for a ChaCha20 stream");
  cipher_ = ctx;
  const bool keyed = EVP_EncryptInit_ex2(ctx, chacha20(), seed.data(), iv.data(), nullptr) == 1;
  if (!keyed) EVP_CIPHER_CTX_free(ctx);
  VEIL_CHECK_IO(keyed, "OpenSSL refused to key a ChaCha20 stream");
}

Prng::~Prng() {
  EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(cipher_));  // cleanses the key schedule
  sodium_memzero(buf_.data(), buf_.size());
}

void Prng::refill() {
  // The keystream itself: ChaCha20 over zeros. OpenSSL keeps the block counter between
  // calls, so the stream is contiguous; ours only bounds it (2^32 blocks, RFC 8439).
  constexpr auto kBlocks = static_cast<std::uint32_t>(sizeof(buf_) / 64);
  VEIL_CHECK_IO(block_counter_ <= UINT32_MAX - kBlocks, "PRNG stream exhausted");
  std::memset(buf_.data(), 0, buf_.size());
  int out = 0;
  VEIL_CHECK_IO(EVP_EncryptUpdate(static_cast<EVP_CIPHER_CTX*>(cipher_), buf_.data(), &out, buf_.data(),
                                  static_cast<int>(buf_.size())) == 1 &&
                    out == static_cast<int>(buf_.size()),
                "OpenSSL's ChaCha20 failed");
  block_counter_ += kBlocks;
  pos_ = 0;
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
