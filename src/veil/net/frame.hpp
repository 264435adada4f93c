// Length-prefixed frames: the unit every veil protocol sends over a byte stream.
//
//   magic "VNET" (4 bytes) | frame version u16 | message type u16 | payload length u64
//   | payload (length bytes)
//
// All integers little-endian. The header is checked (magic, version, length against the
// receiver's bound) before a single payload byte is read or allocated, so a peer cannot
// make the receiver allocate more than its configured maximum. The frame layer does not
// interpret message types or payloads: each protocol on top (veil/protocol) owns its
// messages, its version (carried in its hello) and its error codes.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace veil::net {

inline constexpr std::uint8_t kFrameMagic[4] = {'V', 'N', 'E', 'T'};
// Version of the framing and of the hello envelope that names the protocol (protocol/hello.hpp).
// 2: multiplexed layouts (when the frame carried the HE protocol's version);
// 3: the protocol's name and version moved into its hello.
inline constexpr std::uint16_t kFrameVersion = 3;
inline constexpr std::size_t kFrameHeaderSize = 16;

// Transport failures. Error codes travel in protocols' Error messages as u16; the values
// 1-5, 12 and 15 are the transport's, fixed; protocols number theirs around them
// (protocol/error.hpp).
enum class ErrorCode : std::uint16_t {
  kBadFrame = 1,       // bad magic or header, or a payload that does not parse as a frame
  kBadVersion = 2,     // frame (or protocol) version other than this side's
  kFrameTooLarge = 3,  // declared payload above the receiver's maximum
  kTimeout = 4,        // no progress within the I/O timeout (or idle too long)
  kClosed = 5,         // the peer closed the connection (or it was reset)
  kShuttingDown = 12,  // the channel was interrupted (its owner is shutting down)
  kIo = 15,            // local socket error (resolve, connect, ...)
};
// The transport's codes by name; nullptr for a code that is not the transport's.
const char* error_code_name(std::uint16_t code);

// Every failure of this layer and of the protocols above: a code for programs (u16, as it
// travels), its name and a message for people. what() is "name: message".
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  Error(std::uint16_t code, const std::string& name, const std::string& message);
  std::uint16_t code() const { return code_; }
  template <class E>
  bool is(E c) const {
    return code_ == static_cast<std::uint16_t>(c);
  }
  // Without the code's name (what() starts with it): the text an Error message carries.
  const std::string& message() const { return message_; }

 private:
  std::uint16_t code_;
  std::string message_;
};

struct FrameHeader {
  std::uint16_t version = kFrameVersion;
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
// the TCP channel streams the same format without building one buffer).
std::vector<std::uint8_t> encode_frame(const Frame& frame);
// `bytes` must hold exactly one frame; throws Error on anything else.
Frame parse_frame(std::span<const std::uint8_t> bytes, std::uint64_t max_payload);

}  // namespace veil::net
