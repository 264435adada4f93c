// The non-interactive protocol ("ni", after PRISM): the client sends CKKS ciphertexts of
// its image and decrypts the encrypted logits; the server evaluates every layer under
// encryption. Its messages, version and error codes; docs/protocol.md lists each field
// with its size and bound. The host's messages (Hello, Error, Bye) are in hello.hpp: a
// session opens with Hello{protocol "ni", version kVersion, body OpenBody} and the
// server's ServerInfo.
//
// Decoding is purely syntactic and bounded (lengths checked against fixed limits and
// the bytes present before anything is allocated); it throws net::Error(kBadMessage).
// Keys and ciphertexts stay serialised bytes here: the roles parse them with the
// parameters' context (ckks/serialize.hpp), which validates them.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/net/frame.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/he/public_plan.hpp"
#include "veil/nn/network.hpp"
#include "veil/protocol/hello.hpp"

namespace veil::protocol::ni {

inline constexpr char kName[] = "ni";
// 1: first release; 2: multiplexed layouts; 3: protocol and version in the host's Hello;
// 4: layouts copy their last block's channels (not only a one-block tensor's) and may hold
// copies inside each pixel's cell; 5: each ring's conjugation key level in ServerInfo (the
// linear layers pair their diagonals as complex values); 6: the Galois keys uploaded in
// pieces (UploadKeys, then GaloisKeysPiece messages of at most kKeyPieceBytes).
inline constexpr std::uint16_t kVersion = 6;

using veil::Bytes;  // one byte-vector type for the whole tree (common/bytes.hpp)
using KeyHash = std::array<std::uint8_t, 32>;

// This protocol's error codes (protocol/error.hpp lists the ranges).
enum class ErrorCode : std::uint16_t {
  kBadKeys = 8,         // evaluation keys that do not load or do not fit the plan
  kBadCiphertexts = 9,  // ciphertexts that do not load or do not fit the plan
  kNoKeys = 10,         // inference requested before keys were uploaded or found
};
std::string error_name(std::uint16_t code);  // these, then the host's and the transport's
net::Error error(ErrorCode code, const std::string& message);

// Types 1, 8 and 9 are the host's (Hello, Error, Bye).
enum class MessageType : std::uint16_t {
  kServerInfo = 2,
  kKeyQuery = 3,
  kKeyStatus = 4,
  kUploadKeys = 5,
  kInfer = 6,
  kResult = 7,
  kGaloisKeysPiece = 10,
};
const char* message_name(std::uint16_t type);  // this protocol's and the host's

// The Hello's body: the mode the client wants (u8: 0 latency, 1 throughput).
struct OpenBody {
  nn::Mode mode = nn::Mode::kLatency;
  bool operator==(const OpenBody&) const = default;
};
Bytes encode_open(const OpenBody& m);
OpenBody decode_open(const Bytes& body);  // throws kBadMessage

// Bounds the decoder enforces (a message beyond them is malformed).
inline constexpr std::size_t kMaxParameterBytes = 1 << 16;
inline constexpr std::size_t kMaxRotations = 1 << 16;
inline constexpr std::size_t kMaxCiphertexts = 1 << 20;  // per request or result

// Server -> client: the model's public plan (nn/he/public_plan.hpp), everything the
// client needs to normalise, pack, encrypt, make keys and decrypt (no weights), and the
// server's frame limit.
struct ServerInfo : nn::PublicPlan {
  static constexpr MessageType kType = MessageType::kServerInfo;
  std::uint64_t max_frame_bytes = 0;  // the server's limit on received frames
  bool operator==(const ServerInfo&) const = default;
};

// Client -> server: "do you hold evaluation keys with this hash?" (a repeat session
// then sends no keys).
struct KeyQuery {
  static constexpr MessageType kType = MessageType::kKeyQuery;
  KeyHash hash{};
  bool operator==(const KeyQuery&) const = default;
};

// Server -> client, answer to KeyQuery and UploadKeys: whether the session now has keys.
struct KeyStatus {
  static constexpr MessageType kType = MessageType::kKeyStatus;
  bool ready = false;
  KeyHash hash{};
  bool operator==(const KeyStatus&) const = default;
};

// Client -> server: the evaluation keys, serialised seed-compressed. The relinearisation
// keys and the ring-switching key come here; each Galois key set (rlwe::save_galois_keys,
// `bytes` long) in `pieces` GaloisKeysPiece messages that follow, cut at key boundaries
// (rlwe::galois_key_pieces): the big ring's set, then the smaller ring's. The server
// answers KeyStatus after the last piece. In pieces, no frame is larger than
// kKeyPieceBytes or one key, and the server loads each piece's keys as it arrives instead
// of holding the whole set's bytes beside the keys it builds from them (cifar10-shallow:
// 595 MiB of frames, 0.58 GiB of the server's peak). The key hash is hash_keys(relin,
// galois, ring) of the blobs as the client holds them (ring: nn::save_small_ring_keys).
inline constexpr std::size_t kKeyPieceBytes = std::size_t{32} << 20;
struct KeySetPieces {
  std::uint64_t bytes = 0;
  std::uint32_t pieces = 0;
  bool operator==(const KeySetPieces&) const = default;
};
struct UploadKeys {
  static constexpr MessageType kType = MessageType::kUploadKeys;
  Bytes relin;
  Bytes small_relin, ring_switch;  // the smaller ring's, when the plan switches rings; else empty
  KeySetPieces galois, small_galois;
  bool operator==(const UploadKeys&) const = default;
};
// UploadKeys read in place: views into the frame's payload, which must outlive them.
struct UploadKeysView {
  static constexpr MessageType kType = MessageType::kUploadKeys;
  std::span<const std::uint8_t> relin, small_relin, ring_switch;
  KeySetPieces galois, small_galois;
};
UploadKeysView decode_upload_keys_view(const net::Frame& f);

// Client -> server: the next piece of the Galois key set an UploadKeys announced.
struct GaloisKeysPiece {
  static constexpr MessageType kType = MessageType::kGaloisKeysPiece;
  Bytes piece;
  bool operator==(const GaloisKeysPiece&) const = default;
};
// A piece framed from a view (the client's pieces are views into its key blob).
net::Frame encode_galois_keys_piece(std::span<const std::uint8_t> piece);
// The piece in place (a view into the frame's payload).
std::span<const std::uint8_t> decode_galois_keys_piece_view(const net::Frame& f);

// Client -> server: one evaluation (latency: one image's input blocks; throughput: a
// batch of `images` images, one ciphertext per input element).
struct Infer {
  static constexpr MessageType kType = MessageType::kInfer;
  std::uint32_t images = 1;
  std::vector<Bytes> ciphertexts;
  bool operator==(const Infer&) const = default;
};

// Server -> client: the encrypted logits and the server's time.
struct Result {
  static constexpr MessageType kType = MessageType::kResult;
  double queue_seconds = 0, eval_seconds = 0;
  std::vector<Bytes> ciphertexts;
  bool operator==(const Result&) const = default;
};

net::Frame encode(const ServerInfo& m);
net::Frame encode(const KeyQuery& m);
net::Frame encode(const KeyStatus& m);
net::Frame encode(const UploadKeys& m);
net::Frame encode(const GaloisKeysPiece& m);
net::Frame encode(const Infer& m);
net::Frame encode(const Result& m);

// Decodes a frame of type T::kType (anything else: kUnexpectedMessage, or the peer's
// ErrorMessage rethrown as net::Error with its code, named by ni::error_name).
template <class T>
T decode(const net::Frame& frame);
template <>
ServerInfo decode<ServerInfo>(const net::Frame&);
template <>
KeyQuery decode<KeyQuery>(const net::Frame&);
template <>
KeyStatus decode<KeyStatus>(const net::Frame&);
template <>
UploadKeys decode<UploadKeys>(const net::Frame&);
template <>
GaloisKeysPiece decode<GaloisKeysPiece>(const net::Frame&);
template <>
Infer decode<Infer>(const net::Frame&);
template <>
Result decode<Result>(const net::Frame&);

// BLAKE2b-256 (libsodium crypto_generichash) of the serialised keys, as uploaded.
KeyHash hash_keys(std::span<const std::uint8_t> relin, std::span<const std::uint8_t> galois,
                  std::span<const std::uint8_t> ring = {});
// The same hash over blobs given piece by piece (the server hashes an upload as it
// arrives): begin(size) before each blob's bytes, then update() with them.
class KeyHasher {
 public:
  KeyHasher();
  void begin(std::uint64_t blob_bytes);
  void update(std::span<const std::uint8_t> bytes);
  void blob(std::span<const std::uint8_t> bytes) {
    begin(bytes.size());
    update(bytes);
  }
  KeyHash finish();

 private:
  crypto_generichash_state state_;
};
std::string hex(const KeyHash& h, std::size_t bytes = 32);

}  // namespace veil::protocol::ni
