#include "veil/net/frame.hpp"

#include <cstring>

#include "veil/common/bytes.hpp"

namespace veil::net {

const char* error_code_name(std::uint16_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kBadFrame:
      return "bad frame";
    case ErrorCode::kBadVersion:
      return "unsupported protocol version";
    case ErrorCode::kFrameTooLarge:
      return "frame too large";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kClosed:
      return "connection closed";
    case ErrorCode::kShuttingDown:
      return "shutting down";
    case ErrorCode::kIo:
      return "I/O error";
  }
  return nullptr;
}

Error::Error(ErrorCode code, const std::string& message)
    : Error(static_cast<std::uint16_t>(code), error_code_name(static_cast<std::uint16_t>(code)), message) {}

Error::Error(std::uint16_t code, const std::string& name, const std::string& message)
    : std::runtime_error(name + ": " + message), code_(code), message_(message) {}

std::vector<std::uint8_t> encode_header(std::uint16_t type, std::uint64_t length) {
  ByteWriter w;
  w.raw(kFrameMagic, sizeof kFrameMagic);
  w.u16(kFrameVersion);
  w.u16(type);
  w.u64(length);
  return w.take();
}

FrameHeader decode_header(std::span<const std::uint8_t> header, std::uint64_t max_payload) {
  if (header.size() != kFrameHeaderSize)
    throw Error(ErrorCode::kBadFrame, "frame header of " + std::to_string(header.size()) +
                                          " bytes, expected " + std::to_string(kFrameHeaderSize));
  if (std::memcmp(header.data(), kFrameMagic, sizeof kFrameMagic) != 0)
    throw Error(ErrorCode::kBadFrame, "bad magic (not a veil protocol frame)");
  ByteReader r(header.subspan(sizeof kFrameMagic));
  FrameHeader h;
  h.version = r.u16();
  h.type = r.u16();
  h.length = r.u64();
  if (h.version != kFrameVersion)
    throw Error(ErrorCode::kBadVersion, "peer speaks frame version " + std::to_string(h.version) +
                                            ", this side speaks " + std::to_string(kFrameVersion));
  if (h.length > max_payload)
    throw Error(ErrorCode::kFrameTooLarge, "frame of " + std::to_string(h.length) +
                                               " bytes exceeds the limit of " + std::to_string(max_payload) +
                                               " bytes");
  return h;
}

std::vector<std::uint8_t> encode_frame(const Frame& frame) {
  auto out = encode_header(frame.type, frame.payload.size());
  out.insert(out.end(), frame.payload.begin(), frame.payload.end());
  return out;
}

Frame parse_frame(std::span<const std::uint8_t> bytes, std::uint64_t max_payload) {
  if (bytes.size() < kFrameHeaderSize)
    throw Error(ErrorCode::kBadFrame, "truncated frame header (" + std::to_string(bytes.size()) + " bytes)");
  const FrameHeader h = decode_header(bytes.first(kFrameHeaderSize), max_payload);
  const auto body = bytes.subspan(kFrameHeaderSize);
  if (body.size() != h.length)
    throw Error(ErrorCode::kBadFrame, "frame declares " + std::to_string(h.length) +
                                          " payload bytes but holds " + std::to_string(body.size()));
  return Frame{h.type, {body.begin(), body.end()}};
}

}  // namespace veil::net
