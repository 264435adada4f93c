// Error codes of the host and of every protocol it serves. Codes travel as u16 in Error
// messages; the transport owns 1-5, 12 and 15 (net/frame.hpp), the host the codes below,
// and each protocol its own (protocol/ni/messages.hpp: 8-10; protocol/hybrid/messages.hpp:
// 32-37, and 38-63 kept for it; a new protocol takes codes from 64 up). The values are
// fixed: add new codes, never renumber.
#pragma once

#include <cstdint>
#include <string>

#include "veil/net/frame.hpp"

namespace veil::protocol {

enum class ErrorCode : std::uint16_t {
  kUnexpectedMessage = 6,  // a message this side does not accept now
  kBadMessage = 7,         // well-framed but malformed payload
  kBusy = 11,              // session cap or key-cache cap reached
  kUnavailable = 13,       // protocol, version or mode not offered by this server
  kInternal = 14,
};

// Names of the transport's and the host's codes ("error N" for others). Protocols extend
// it with their own (ni::error_name).
std::string error_name(std::uint16_t code);
net::Error error(ErrorCode code, const std::string& message);

}  // namespace veil::protocol
