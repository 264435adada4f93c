#include "veil/rlwe/keys.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstdint>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"

namespace veil::rlwe {

SecretKey& SecretKey::operator=(const SecretKey& o) {
  if (this != &o) {
    if (!s_.empty()) sodium_memzero(s_.data(), s_.size() * sizeof(u64));
    s_ = o.s_;
    param_id_ = o.param_id_;
  }
  return *this;
}

SecretKey& SecretKey::operator=(SecretKey&& o) noexcept {
  if (this != &o) {
    if (!s_.empty()) sodium_memzero(s_.data(), s_.size() * sizeof(u64));
    s_ = std::move(o.s_);
    param_id_ = o.param_id_;
  }
  return *this;
}

SecretKey::~SecretKey() {
  if (!s_.empty()) sodium_memzero(s_.data(), s_.size() * sizeof(u64));
}

KeyPoly KeyPoly::unset(std::size_t n, const std::vector<u64>& primes) {
  KeyPoly p;
  p.n_ = n;
  std::size_t narrow = 0, wide = 0, high = 0;
  const std::size_t high_bytes = (n + 7) / 8;
  for (u64 q : primes) {
    const Words w = words_for(q);
    p.words_.push_back(w);
    p.offset_.push_back((w == Words::k64 ? wide++ : narrow++) * n);
    p.high_offset_.push_back(w == Words::k33 ? high++ * high_bytes : 0);
  }
  p.narrow_words_.resize(narrow * n);
  p.high_bits_.resize(high * high_bytes);
  p.wide_words_.resize(wide * n);
  return p;
}

KeyPoly::KeyPoly(std::size_t n, const std::vector<u64>& primes, const u64* residues)
    : KeyPoly(unset(n, primes)) {
  parallel_for(primes.size(), [&](std::size_t k) { set(k, residues + k * n); });
}

void KeyPoly::set(std::size_t k, const u64* residues) {
  VEIL_REQUIRE(k < limbs(), "key limb " << k << " of " << limbs());
  if (words_[k] == Words::k64) {
    std::copy(residues, residues + n_, wide_words_.data() + offset_[k]);
    return;
  }
  // Residues are below the limb's prime, so the low words and (33 bits) the 33rd bits
  // keep every value.
  std::uint32_t* out = narrow_words_.data() + offset_[k];
  for (std::size_t j = 0; j < n_; ++j) out[j] = static_cast<std::uint32_t>(residues[j]);
  if (words_[k] == Words::k33) math::pack_bit32(residues, n_, high_bits_.data() + high_offset_[k]);
}

void KeyPoly::get(std::size_t k, u64* residues) const {
  VEIL_REQUIRE(k < limbs(), "key limb " << k << " of " << limbs());
  switch (words_[k]) {
    case Words::k32:
      std::copy(narrow32(k), narrow32(k) + n_, residues);
      return;
    case Words::k33: {
      const math::Words33 w = words33(k);
      for (std::size_t j = 0; j < n_; ++j) residues[j] = w[j];
      return;
    }
    case Words::k64:
      std::copy(wide64(k), wide64(k) + n_, residues);
      return;
  }
}

std::size_t KeySwitchKey::bytes() const {
  std::size_t total = 0;
  for (const auto& p : b) total += p.bytes();
  for (const auto& p : a) total += p.bytes();
  return total;
}

}  // namespace veil::rlwe
