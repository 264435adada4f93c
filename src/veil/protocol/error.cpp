#include "veil/protocol/error.hpp"

namespace veil::protocol {

std::string error_name(std::uint16_t code) {
  if (const char* n = net::error_code_name(code)) return n;
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kUnexpectedMessage:
      return "unexpected message";
    case ErrorCode::kBadMessage:
      return "malformed message";
    case ErrorCode::kBusy:
      return "server busy";
    case ErrorCode::kUnavailable:
      return "not offered";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "error " + std::to_string(code);
}

net::Error error(ErrorCode code, const std::string& message) {
  return net::Error(static_cast<std::uint16_t>(code), error_name(static_cast<std::uint16_t>(code)), message);
}

}  // namespace veil::protocol
