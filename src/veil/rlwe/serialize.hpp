// Binary serialisation of RLWE objects (keys) and the object framing every scheme's
// serialiser shares (header, bit-packed residues, seeds).
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
#include <utility>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/rlwe/context.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::rlwe {

enum class ObjectType : std::uint16_t {
  kParameters = 1,
  kSecretKey = 2,
  kPublicKey = 3,
  kRelinKeys = 4,
  kGaloisKeys = 5,
  kPlaintext = 6,
  kCiphertext = 7,
  // The exact (BFV-style) scheme's objects (bfv/serialize.hpp).
  kBfvParameters = 8,
  kBfvCiphertext = 9,
  kBfvResponse = 10,
  kBfvPlaintext = 11,
};
inline constexpr std::uint16_t kMaxObjectType = 11;

inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::uint32_t kFlagCompressed = 1;

Bytes save_secret_key(const Context& ctx, const SecretKey& sk);
SecretKey load_secret_key(const Context& ctx, std::span<const std::uint8_t> data);

Bytes save_public_key(const Context& ctx, const PublicKey& pk, bool compress = true);
PublicKey load_public_key(const Context& ctx, std::span<const std::uint8_t> data);

Bytes save_relin_keys(const Context& ctx, const RelinKeys& rk, bool compress = true);
RelinKeys load_relin_keys(const Context& ctx, std::span<const std::uint8_t> data);

Bytes save_galois_keys(const Context& ctx, const GaloisKeys& gk, bool compress = true);
GaloisKeys load_galois_keys(const Context& ctx, std::span<const std::uint8_t> data);
// What save_relin_keys / save_galois_keys would return, in bytes, without building it: a
// deep network's key set is gigabytes, and reporting its size must not double the peak.
std::uint64_t saved_size(const Context& ctx, const RelinKeys& rk, bool compress = true);
std::uint64_t saved_size(const Context& ctx, const GaloisKeys& gk, bool compress = true);
// The (Galois element, level) of each key a serialised Galois key set holds, read from the
// key headers without loading or expanding a key; the same checks as loading, except the
// residues. A server compares them with its plan before it spends memory on an upload.
std::vector<std::pair<std::uint32_t, int>> peek_galois_keys(const Context& ctx,
                                                            std::span<const std::uint8_t> data);

// Reads just the header, checking magic and version; returns the object type.
ObjectType peek_type(std::span<const std::uint8_t> data);

// --- framing shared with the schemes' serialisers ---
struct ObjectHeader {
  ObjectType type;
  std::uint32_t flags;
  std::uint64_t param_id;
  std::uint64_t body_len;
};
// Header + body.
Bytes finish_object(ObjectType type, std::uint32_t flags, std::uint64_t param_id, ByteWriter& body);
// Reads and checks a header (magic, version, known type and flags, body length).
ObjectHeader read_object_header(ByteReader& r);
// read_object_header, then the expected type and (when ctx is given) the parameter id.
ObjectHeader expect_object(ByteReader& r, const Context* ctx, ObjectType type);
// Bytes of packed residues over the given primes.
std::uint64_t packed_bytes(const Context& ctx, std::span<const std::size_t> primes);
void write_poly(ByteWriter& w, const Context& ctx, const u64* data, std::span<const std::size_t> primes);
// Checks every residue against its prime.
void read_poly(ByteReader& r, const Context& ctx, u64* data, std::span<const std::size_t> primes,
               const char* what);
void write_seed(ByteWriter& w, const Seed& s);
Seed read_seed(ByteReader& r);
void check_level(const Context& ctx, std::int64_t level, const char* what);

}  // namespace veil::rlwe
