// Binary serialisation of every CKKS object.
//
// Layout: a 32-byte header, then the body.
//   magic "VEIL" | format version u16 | object type u16 | flags u32 |
//   parameter id u64 | body length u64 | reserved u32
// Loading checks magic, version, type, parameter id and the body length against the
// size the context implies *before* allocating, then validates every field (levels,
// sizes, each residue < its prime) and throws std::runtime_error naming the problem.
//
// Residues are bit-packed at each prime's width. With the `compress` flag, a fresh
// symmetric ciphertext or an evaluation key stores the 32-byte seed of its uniform part
// instead of the polynomials (about half the bytes); the loader re-expands it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"
#include "veil/ckks/keys.hpp"
#include "veil/ckks/params.hpp"
#include "veil/common/bytes.hpp"

namespace veil::ckks {

enum class ObjectType : std::uint16_t {
  kParameters = 1,
  kSecretKey = 2,
  kPublicKey = 3,
  kRelinKeys = 4,
  kGaloisKeys = 5,
  kPlaintext = 6,
  kCiphertext = 7,
};

inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;

Bytes save_parameters(const CkksParameters& p);
// allow_insecure is decided by the loader, never by the file.
CkksParameters load_parameters(std::span<const std::uint8_t> data, bool allow_insecure = false);

Bytes save_secret_key(const CkksContext& ctx, const SecretKey& sk);
SecretKey load_secret_key(const CkksContext& ctx, std::span<const std::uint8_t> data);

Bytes save_public_key(const CkksContext& ctx, const PublicKey& pk, bool compress = true);
PublicKey load_public_key(const CkksContext& ctx, std::span<const std::uint8_t> data);

Bytes save_relin_keys(const CkksContext& ctx, const RelinKeys& rk, bool compress = true);
RelinKeys load_relin_keys(const CkksContext& ctx, std::span<const std::uint8_t> data);

Bytes save_galois_keys(const CkksContext& ctx, const GaloisKeys& gk, bool compress = true);
GaloisKeys load_galois_keys(const CkksContext& ctx, std::span<const std::uint8_t> data);

Bytes save_plaintext(const CkksContext& ctx, const Plaintext& pt);
Plaintext load_plaintext(const CkksContext& ctx, std::span<const std::uint8_t> data);

// Compressed only when the ciphertext still carries its seed (fresh symmetric encryption).
Bytes save_ciphertext(const CkksContext& ctx, const Ciphertext& ct, bool compress = true);
Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> data);

// Reads just the header, checking magic and version; returns the object type.
ObjectType peek_type(std::span<const std::uint8_t> data);

}  // namespace veil::ckks
