// The hybrid protocol ("hybrid": HE preprocessing + secret-shared online stage, Delphi,
// Mishra et al., USENIX Security 2020; issue 16): its messages, version and error codes.
// A session opens with the host's Hello{protocol "hybrid", version kVersion, body empty}
// and the server's ServerInfo (the public program: architecture, scales, no weights).
// Then, any number of times and in any order the rules below allow:
//
//   Keys (20, hybrid::Message::kKeys)        -> KeysAccepted      (once per session)
//   Preprocess                               -> Preprocessing{id}, then the preprocessing
//        frames of hybrid/preprocess.hpp (21..24) until the server holds material `id`
//   Online{id}                               -> OnlineAccepted{id}, then the online
//        stage's share frames (25) until the client holds the logits
//
// Every request is acknowledged before its multi-round part starts, so a refusal (the
// server's Error with one of the codes below) leaves both sides in sync and the session
// goes on. A fault inside a multi-round part ends the session.
//
// Decoding is purely syntactic and bounded, as ni's (protocol/wire.hpp); the public
// program and the parameter sets are validated by the client role (client.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/net/frame.hpp"
#include "veil/nn/network.hpp"
#include "veil/protocol/hello.hpp"

namespace veil::protocol::hybrid {

inline constexpr char kName[] = "hybrid";
// 1: first release.
// 2: shares over the two-prime ring Z_{p_0 p_1} (hybrid/program.hpp): the keys frame holds
//    a pair of keys per prime, preprocessing runs once per prime, share vectors carry both
//    residues, ServerInfo's parameters are each prime's concatenated; public program v3.
// 3: public program v4 (depthwise convolution shapes, whose zero blocks the server skips)
//    and strided 1x1 layers laid out on the pixels they read: a version-2 client would lay
//    its masks out differently.
inline constexpr std::uint16_t kVersion = 3;

using veil::Bytes;
// Names one inference's preprocessing material: a per-session counter (8 bytes,
// big-endian) and 8 random bytes, so ids are never reused within a session and cannot be
// guessed across sessions.
using MaterialId = std::array<std::uint8_t, 16>;
std::string hex(const MaterialId& id);

// This protocol's error codes (protocol/error.hpp lists the ranges: 32 and up).
enum class ErrorCode : std::uint16_t {
  kBadKeys = 32,          // public keys that do not load for the model's parameters
  kNoKeys = 33,           // preprocessing or inference before the keys
  kUnknownMaterial = 34,  // an id this session never issued
  kMaterialUsed = 35,     // material already consumed by an inference (used exactly once)
  kMaterialLimit = 36,    // the session holds the most unused materials the server keeps
  kMaterialExpired = 37,  // material older than the server keeps it
};
std::string error_name(std::uint16_t code);  // these, then the host's and the transport's
net::Error error(ErrorCode code, const std::string& message);

// Types 1, 8 and 9 are the host's, 2..7 the non-interactive protocol's, 20..25 the
// preprocessing and online frames (veil::hybrid::Message).
enum class MessageType : std::uint16_t {
  kServerInfo = 26,
  kKeysAccepted = 27,
  kPreprocess = 28,
  kPreprocessing = 29,
  kOnline = 30,
  kOnlineAccepted = 31,
};
const char* message_name(std::uint16_t type);  // this protocol's, hybrid::Message's and the host's

// Bounds the decoder enforces.
inline constexpr std::size_t kMaxParameterBytes = 1 << 16;
inline constexpr std::size_t kMaxProgramBytes = std::size_t{1} << 24;

// The Hello's body: empty in version 1.
Bytes encode_open();
void decode_open(const Bytes& body);  // throws kBadMessage

// Server -> client: the model's public description. `program` is the public program
// (hybrid/public_program.hpp: no weights, no biases); `linear_parameters` and
// `beaver_parameters` are bfv::save_parameters of hybrid::he_parameters(program), which
// the client recomputes and compares (they follow from public facts only); over two primes,
// each prime's saved parameters concatenated (parameter_blobs).
// ServerInfo's {linear_parameters, beaver_parameters} for these contexts.
std::pair<Bytes, Bytes> parameter_blobs(const veil::hybrid::HeParameters& hp);

struct ServerInfo {
  static constexpr MessageType kType = MessageType::kServerInfo;
  std::string model, dataset;
  nn::Shape input;
  std::vector<double> mean, std;  // per input channel
  std::vector<std::string> classes;
  Bytes program;
  Bytes linear_parameters, beaver_parameters;
  std::uint32_t max_materials = 0;    // unused materials the server keeps per session
  double max_material_age_s = 0;      // and for how long
  std::uint64_t max_frame_bytes = 0;  // the server's limit on received frames
  bool operator==(const ServerInfo&) const = default;
};

struct KeysAccepted {
  static constexpr MessageType kType = MessageType::kKeysAccepted;
  bool operator==(const KeysAccepted&) const = default;
};

// Client -> server: run one inference's preprocessing now.
struct Preprocess {
  static constexpr MessageType kType = MessageType::kPreprocess;
  bool operator==(const Preprocess&) const = default;
};

// Server -> client: accepted; the material will be stored under `id`.
struct Preprocessing {
  static constexpr MessageType kType = MessageType::kPreprocessing;
  MaterialId id{};
  bool operator==(const Preprocessing&) const = default;
};

// Client -> server: run the online stage with material `id` (consumed).
struct Online {
  static constexpr MessageType kType = MessageType::kOnline;
  MaterialId id{};
  bool operator==(const Online&) const = default;
};

// Server -> client: accepted; the share exchange starts.
struct OnlineAccepted {
  static constexpr MessageType kType = MessageType::kOnlineAccepted;
  MaterialId id{};
  bool operator==(const OnlineAccepted&) const = default;
};

net::Frame encode(const ServerInfo& m);
net::Frame encode(const KeysAccepted& m);
net::Frame encode(const Preprocess& m);
net::Frame encode(const Preprocessing& m);
net::Frame encode(const Online& m);
net::Frame encode(const OnlineAccepted& m);

// Decodes a frame of type T::kType (anything else: kUnexpectedMessage, or the peer's Error
// rethrown as net::Error with its code, named by hybrid::error_name).
template <class T>
T decode(const net::Frame& frame);
template <>
ServerInfo decode<ServerInfo>(const net::Frame&);
template <>
KeysAccepted decode<KeysAccepted>(const net::Frame&);
template <>
Preprocess decode<Preprocess>(const net::Frame&);
template <>
Preprocessing decode<Preprocessing>(const net::Frame&);
template <>
Online decode<Online>(const net::Frame&);
template <>
OnlineAccepted decode<OnlineAccepted>(const net::Frame&);

}  // namespace veil::protocol::hybrid
