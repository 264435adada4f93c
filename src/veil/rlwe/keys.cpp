#include "veil/rlwe/keys.hpp"

#include <sodium.h>

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

}  // namespace veil::rlwe
