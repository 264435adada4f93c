#include "veil/rlwe/keys.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstdint>

#include "veil/common/error.hpp"

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

KeyPoly::KeyPoly(std::size_t n, const std::vector<u64>& primes) : n_(n) {
  std::size_t narrow_limbs = 0;
  for (u64 q : primes) {
    const bool narrow = q <= UINT32_MAX;
    narrow_.push_back(narrow ? 1 : 0);
    offset_.push_back((narrow ? narrow_limbs : offset_.size() - narrow_limbs) * n);
    narrow_limbs += narrow ? 1 : 0;
  }
  narrow_words_.assign(narrow_limbs * n, 0);
  wide_words_.assign((primes.size() - narrow_limbs) * n, 0);
}

KeyPoly::KeyPoly(std::size_t n, const std::vector<u64>& primes, const u64* residues) : KeyPoly(n, primes) {
  for (std::size_t k = 0; k < primes.size(); ++k) set(k, residues + k * n);
}

void KeyPoly::set(std::size_t k, const u64* residues) {
  VEIL_REQUIRE(k < limbs(), "key limb " << k << " of " << limbs());
  if (narrow(k)) {
    // Residues are below the limb's prime, so the narrowing keeps every value.
    std::uint32_t* out = narrow_words_.data() + offset_[k];
    for (std::size_t j = 0; j < n_; ++j) out[j] = static_cast<std::uint32_t>(residues[j]);
  } else {
    std::copy(residues, residues + n_, wide_words_.data() + offset_[k]);
  }
}

void KeyPoly::get(std::size_t k, u64* residues) const {
  VEIL_REQUIRE(k < limbs(), "key limb " << k << " of " << limbs());
  if (narrow(k)) {
    const std::uint32_t* in = narrow32(k);
    std::copy(in, in + n_, residues);
  } else {
    std::copy(wide64(k), wide64(k) + n_, residues);
  }
}

std::size_t KeySwitchKey::bytes() const {
  std::size_t total = 0;
  for (const auto& p : b) total += p.bytes();
  for (const auto& p : a) total += p.bytes();
  return total;
}

}  // namespace veil::rlwe
