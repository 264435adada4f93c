// Key material. Secret keys are wiped (sodium_memzero) on destruction and have no
// printing operator; evaluation keys carry the seed of their uniform parts so they can be
// saved seed-compressed.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "veil/common/rng.hpp"
#include "veil/math/modarith.hpp"

namespace veil::rlwe {

using math::u64;

class SecretKey {
 public:
  SecretKey() = default;
  SecretKey(const SecretKey& o) : s_(o.s_), param_id_(o.param_id_) {}
  SecretKey& operator=(const SecretKey& o);
  SecretKey(SecretKey&&) noexcept = default;
  SecretKey& operator=(SecretKey&& o) noexcept;
  ~SecretKey();

  // s in NTT form over every prime of the context (data primes, then special primes).
  std::vector<u64>& data() { return s_; }
  const std::vector<u64>& data() const { return s_; }
  std::uint64_t param_id() const { return param_id_; }
  void set_param_id(std::uint64_t id) { param_id_ = id; }

 private:
  std::vector<u64> s_;
  std::uint64_t param_id_ = 0;
};

class PublicKey {
 public:
  // (b, a) = (-a*s + e, a) over the data primes at the top level, NTT form.
  std::vector<u64> b, a;
  Seed seed{};
  std::uint64_t param_id = 0;
};

// Hybrid key-switching key from s' to s (Han-Ki 2020): for each digit j,
// (b_j, a_j) = (-a_j*s + e_j + P*[Q/Q_j]*[(Q/Q_j)^-1]_{Q_j} * s', a_j) over Q_level * P.
class KeySwitchKey {
 public:
  int level = -1;  // highest ciphertext level this key can switch
  // Per digit, (level+1+K) limbs each, NTT form.
  std::vector<std::vector<u64>> b, a;
  Seed seed{};
  std::uint64_t param_id = 0;
  std::size_t num_digits() const { return b.size(); }
};

class RelinKeys {
 public:
  KeySwitchKey key;
};

class GaloisKeys {
 public:
  std::map<std::uint32_t, KeySwitchKey> keys;
  bool has(std::uint32_t galois_elt) const { return keys.count(galois_elt) != 0; }
};

}  // namespace veil::rlwe
