// Key material. Secret keys are wiped (sodium_memzero) on destruction and have no
// printing operator; evaluation keys carry the seed of their uniform parts so they can be
// saved seed-compressed.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "veil/common/rng.hpp"
#include "veil/math/modarith.hpp"
#include "veil/math/vecmod.hpp"
#include "veil/rlwe/poly.hpp"

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

// One polynomial of a key-switching key, in NTT form over a list of primes, each limb in
// the narrowest words that hold its residues: 32 bits for a prime below 2^32 (every prime
// of the AVX2 chains but the base prime), 33 bits for one below 2^33 (the 33-bit primes of
// the chains at scale 2^33 that deep networks take: 32-bit words plus a plane of their
// 33rd bits), 64 otherwise. Evaluation keys are the largest thing a session brings to the
// server (cifar10-shallow: 587 MiB sent bit-packed and seed-compressed, 2.4 GiB in 64-bit
// words; cifar10-resnet20: 3.3 GiB sent, 11.7 GiB in 64-bit words), and key switching's inner
// product streams them from memory, so narrower words save both.
class KeyPoly {
 public:
  enum class Words : std::uint8_t { k32, k33, k64 };
  // The words a limb over prime q takes.
  static Words words_for(u64 q) {
    return q <= UINT32_MAX ? Words::k32 : q < (u64{1} << 33) ? Words::k33 : Words::k64;
  }

  KeyPoly() = default;
  // Limbs from `residues`, n 64-bit words per prime, each below its prime (deserialisation
  // builds them this way, one limb per task of the thread pool).
  KeyPoly(std::size_t n, const std::vector<u64>& primes, const u64* residues);
  // Limbs of n coefficients whose words are left unwritten: every limb must be set() before
  // it is read. Key generation sets each limb in the task that computes it, so the pages of
  // a session's gigabytes of keys are first touched on every thread, not zero-filled on one.
  static KeyPoly unset(std::size_t n, const std::vector<u64>& primes);

  std::size_t n() const { return n_; }
  std::size_t limbs() const { return words_.size(); }
  Words words(std::size_t k) const { return words_[k]; }
  // Limb k's words: narrow32 for a 32-bit limb, words33 for a 33-bit one, wide64 otherwise.
  const std::uint32_t* narrow32(std::size_t k) const { return narrow_words_.data() + offset_[k]; }
  math::Words33 words33(std::size_t k) const {
    return {narrow_words_.data() + offset_[k], high_bits_.data() + high_offset_[k]};
  }
  const u64* wide64(std::size_t k) const { return wide_words_.data() + offset_[k]; }
  // Limb k from / to n residues in 64-bit words (below limb k's prime).
  void set(std::size_t k, const u64* residues);
  void get(std::size_t k, u64* residues) const;
  std::size_t bytes() const {
    return narrow_words_.size() * sizeof(std::uint32_t) + high_bits_.size() +
           wide_words_.size() * sizeof(u64);
  }
  bool operator==(const KeyPoly&) const = default;

 private:
  std::size_t n_ = 0;
  std::vector<Words> words_;
  std::vector<std::size_t> offset_;       // into narrow_words_ (32 and 33 bits) or wide_words_
  std::vector<std::size_t> high_offset_;  // 33-bit limbs: into high_bits_
  template <class T>
  using Storage = std::vector<T, UninitAllocator<T>>;
  Storage<std::uint32_t> narrow_words_;
  Storage<std::uint8_t> high_bits_;  // bit x % 8 of byte x / 8: bit 32 of word x
  Storage<u64> wide_words_;
};

// Hybrid key-switching key from s' to s (Han-Ki 2020): for each digit j,
// (b_j, a_j) = (-a_j*s + e_j + P*[Q/Q_j]*[(Q/Q_j)^-1]_{Q_j} * s', a_j) over Q_level * P.
class KeySwitchKey {
 public:
  int level = -1;  // highest ciphertext level this key can switch
  // Per digit, (level+1+K) limbs each (data primes 0..level, then the special primes).
  std::vector<KeyPoly> b, a;
  Seed seed{};
  std::uint64_t param_id = 0;
  std::size_t num_digits() const { return b.size(); }
  std::size_t bytes() const;
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
