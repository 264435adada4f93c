// Plaintexts and ciphertexts of any RLWE scheme: RNS polynomials in NTT form, limb-major
// (limb i of poly c starts at (c * (level+1) + i) * N), tagged with the id of the
// parameters they were made under so every operation can refuse foreign objects.
// Schemes add their metadata by deriving (ckks::Ciphertext adds scale and slots).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "veil/common/rng.hpp"
#include "veil/rlwe/poly.hpp"

namespace veil::rlwe {

class Context;

class Plaintext {
 public:
  Plaintext() = default;
  // Contents are uninitialised: the creator must write every coefficient.
  Plaintext(const Context& ctx, int level);

  std::size_t n() const { return n_; }
  int level() const { return level_; }
  std::uint64_t param_id() const { return param_id_; }
  std::size_t num_limbs() const { return static_cast<std::size_t>(level_) + 1; }
  u64* limb(std::size_t i) { return data_.data() + i * n_; }
  const u64* limb(std::size_t i) const { return data_.data() + i * n_; }
  PolyData& data() { return data_; }
  const PolyData& data() const { return data_; }
  // Keeps the first level+1 limbs.
  void drop_to_level(int level);

 private:
  std::size_t n_ = 0;
  int level_ = -1;
  std::uint64_t param_id_ = 0;
  PolyData data_;
};

class Ciphertext {
 public:
  Ciphertext() = default;
  // Contents are uninitialised: the creator must write every coefficient.
  Ciphertext(const Context& ctx, std::size_t size, int level);

  std::size_t n() const { return n_; }
  // Number of polynomials: 2 after relinearisation, 3 after a multiplication.
  std::size_t size() const { return size_; }
  int level() const { return level_; }
  std::uint64_t param_id() const { return param_id_; }
  std::size_t num_limbs() const { return static_cast<std::size_t>(level_) + 1; }
  bool empty() const { return size_ == 0; }

  u64* poly(std::size_t c) { return data_.data() + c * num_limbs() * n_; }
  const u64* poly(std::size_t c) const { return data_.data() + c * num_limbs() * n_; }
  u64* limb(std::size_t c, std::size_t i) { return poly(c) + i * n_; }
  const u64* limb(std::size_t c, std::size_t i) const { return poly(c) + i * n_; }
  PolyData& data() { return data_; }
  const PolyData& data() const { return data_; }

  // Fresh symmetric encryptions remember the seed of their uniform part c1, so they can
  // be saved seed-compressed. Any operation that changes c1 clears it.
  const std::optional<Seed>& seed() const { return seed_; }
  void set_seed(std::optional<Seed> s) { seed_ = s; }

  void resize(std::size_t size, int level);
  // Keeps the first level+1 limbs of each polynomial.
  void drop_to_level(int level);

 private:
  std::size_t n_ = 0;
  std::size_t size_ = 0;
  int level_ = -1;
  std::uint64_t param_id_ = 0;
  PolyData data_;
  std::optional<Seed> seed_;
};

// Throws std::invalid_argument unless `id` is the context's parameter id; `what` names the
// object ("ciphertext", "second operand", "public key").
void check_param_id(const Context& ctx, std::uint64_t id, const char* what);

}  // namespace veil::rlwe
