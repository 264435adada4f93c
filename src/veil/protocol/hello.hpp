// The host's own messages, the same for every protocol it serves: the client's Hello, which
// names the protocol and its version (the host dispatches on them), the Error either side
// may send, and the client's Bye. Message types 1, 8 and 9 are these; each protocol
// numbers its own messages around them (protocol/ni/messages.hpp).
//
//   Hello: str protocol, u16 protocol version, str client name, blob body (the protocol's
//          own opening: for "ni", the mode; for "hybrid", empty)
//   Error: u16 code, str text          Bye: (empty)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/common/bytes.hpp"
#include "veil/net/frame.hpp"
#include "veil/protocol/error.hpp"

namespace veil::protocol {

using veil::Bytes;  // one byte-vector type for the whole tree (common/bytes.hpp)

enum class HostMessage : std::uint16_t { kHello = 1, kError = 8, kBye = 9 };

inline constexpr std::size_t kMaxProtocolName = 64;
inline constexpr std::size_t kMaxClientName = 256;
inline constexpr std::size_t kMaxHelloBody = 1 << 16;
inline constexpr std::size_t kMaxHelloBytes = 1 << 17;  // the frame limit before the hello
inline constexpr std::size_t kMaxErrorText = 4096;

struct Hello {
  static constexpr HostMessage kType = HostMessage::kHello;
  std::string protocol;       // "ni": the non-interactive protocol; "hybrid": protocol/hybrid
  std::uint16_t version = 0;  // that protocol's version
  std::string client;         // free text for the server's log ("veil client")
  Bytes body;                 // the protocol's own opening message
  bool operator==(const Hello&) const = default;
};

struct ErrorMessage {
  static constexpr HostMessage kType = HostMessage::kError;
  std::uint16_t code = static_cast<std::uint16_t>(ErrorCode::kInternal);
  std::string text;
  bool operator==(const ErrorMessage&) const = default;
};

struct Bye {
  static constexpr HostMessage kType = HostMessage::kBye;
  bool operator==(const Bye&) const = default;
};

net::Frame encode(const Hello& m);
net::Frame encode(const ErrorMessage& m);
net::Frame encode(const Bye& m);
// An Error message carrying the exception's code and text.
net::Frame encode_error(const net::Error& e);

// Decoders of the host's messages; a peer's Error instead is rethrown as net::Error with
// its code (named by protocol::error_name), another type is kUnexpectedMessage.
Hello decode_hello(const net::Frame& f);
ErrorMessage decode_error(const net::Frame& f);
Bye decode_bye(const net::Frame& f);

// The host's message names ("Hello", ...), nullptr for another type.
const char* host_message_name(std::uint16_t type);

}  // namespace veil::protocol
