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

// A Galois key set in pieces: save_galois_keys' bytes cut at key boundaries, the first
// piece holding the object header, the count and the first keys, each piece whole keys of
// at most `max_piece_bytes` in all (or one key, when a key alone is larger). The ni upload
// sends them as separate messages, so frames stay small and a server never holds the
// whole serialised set beside the keys it loads. Views into `data`.
std::vector<std::span<const std::uint8_t>> galois_key_pieces(const Context& ctx,
                                                             std::span<const std::uint8_t> data,
                                                             std::size_t max_piece_bytes);

// Loads a Galois key set from its pieces in order (the checks of load_galois_keys).
class GaloisKeyPieceReader {
 public:
  explicit GaloisKeyPieceReader(const Context& ctx) : ctx_(&ctx) {}
  // The (element, level) of the keys in the next piece, as peek_galois_keys reads them.
  std::vector<std::pair<std::uint32_t, int>> peek(std::span<const std::uint8_t> piece) const;
  // Loads the next piece's keys into `into`; an element already there is an error.
  void read(std::span<const std::uint8_t> piece, GaloisKeys& into);
  // Whether the pieces so far hold every key the set's header announced.
  bool complete() const { return started_ && read_ == count_ && body_left_ == 0; }

 private:
  const Context* ctx_;
  bool started_ = false, compressed_ = false;
  std::uint32_t count_ = 0, read_ = 0;
  std::uint64_t body_left_ = 0;  // of the body the header announced
};

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
// `partial`: the reader holds the body's first part only (an object sent in pieces), so
// the body may be longer than what follows.
ObjectHeader read_object_header(ByteReader& r, bool partial = false);
// read_object_header, then the expected type and (when ctx is given) the parameter id.
ObjectHeader expect_object(ByteReader& r, const Context* ctx, ObjectType type, bool partial = false);
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
