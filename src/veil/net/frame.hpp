// Length-prefixed frames: the unit every veil protocol sends over a byte stream.
//
//   magic "VNET" (4 bytes) | protocol version u16 | message type u16 | payload length u64
//   | payload (length bytes)
//
// All integers little-endian. The header is checked (magic, version, length against the
// receiver's bound) before a single payload byte is read or allocated, so a peer cannot
// make the receiver allocate more than its configured maximum. The frame layer does not
// interpret message types: the protocol on top (veil/protocol) does.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace veil::net {

inline constexpr std::uint8_t kFrameMagic[4] = {'V', 'N', 'E', 'T'};
inline constexpr std::uint16_t kProtocolVersion = 2;  // 2: multiplexed layouts
inline constexpr std::size_t kFrameHeaderSize = 16;

// Why a frame or message was refused. The values travel in Error messages (docs/protocol.md),
// so they are fixed: add new codes at the end.
enum class ErrorCode : std::uint16_t {
  kBadFrame = 1,         // bad magic, header or payload that does not parse
  kBadVersion = 2,       // protocol version other than kProtocolVersion
  kFrameTooLarge = 3,    // declared payload above the receiver's maximum
  kTimeout = 4,          // no progress within the I/O timeout (or idle too long)
  kClosed = 5,           // the peer closed the connection (or it was reset)
  kUnexpectedMessage = 6,
  kBadMessage = 7,       // well-framed but malformed payload
  kBadKeys = 8,          // evaluation keys that do not load or do not fit the plan
  kBadCiphertexts = 9,   // ciphertexts that do not load or do not fit the plan
  kNoKeys = 10,          // inference requested before keys were uploaded or found
  kBusy = 11,            // session cap or key-cache cap reached
  kShuttingDown = 12,
  kModeUnavailable = 13,
  kInternal = 14,
  kIo = 15,              // local socket error (resolve, connect, ...)
};
const char* error_code_name(ErrorCode c);

// Every failure of this layer and the protocol above: a code for programs, a message for
// people.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const { return code_; }
  // Without the code's name (what() starts with it): the text an Error message carries.
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

struct FrameHeader {
  std::uint16_t version = kProtocolVersion;
  std::uint16_t type = 0;
  std::uint64_t length = 0;
};

struct Frame {
  std::uint16_t type = 0;
  std::vector<std::uint8_t> payload;
};

std::vector<std::uint8_t> encode_header(std::uint16_t type, std::uint64_t length);
// Throws Error (kBadFrame, kBadVersion or kFrameTooLarge) for a header this side refuses.
FrameHeader decode_header(std::span<const std::uint8_t> header, std::uint64_t max_payload);

// Whole frame as bytes, and back (for tests, the fuzz target and tools that craft frames:
// the Channel streams the same format without building one buffer).
std::vector<std::uint8_t> encode_frame(const Frame& frame);
// `bytes` must hold exactly one frame; throws Error on anything else.
Frame parse_frame(std::span<const std::uint8_t> bytes, std::uint64_t max_payload);

}  // namespace veil::net
