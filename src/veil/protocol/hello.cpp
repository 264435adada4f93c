#include "veil/protocol/hello.hpp"

#include "veil/common/error.hpp"
#include "veil/protocol/wire.hpp"

namespace veil::protocol {

const char* host_message_name(std::uint16_t type) {
  switch (static_cast<HostMessage>(type)) {
    case HostMessage::kHello:
      return "Hello";
    case HostMessage::kError:
      return "Error";
    case HostMessage::kBye:
      return "Bye";
  }
  return nullptr;
}

namespace {

const char* name_or_unknown(std::uint16_t type) {
  const char* n = host_message_name(type);
  return n ? n : "unknown message";
}

}  // namespace

namespace wire {

void check_type(const net::Frame& f, std::uint16_t want, const char* want_name, ErrorNames names,
                const char* (*message_name)(std::uint16_t)) {
  if (f.type == want) return;
  const auto error_type = static_cast<std::uint16_t>(HostMessage::kError);
  if (f.type == error_type && want != error_type) {
    const auto e = decode_error(f);
    throw net::Error(e.code, names(e.code), e.text);
  }
  throw error(ErrorCode::kUnexpectedMessage, std::string("expected ") + want_name + ", got " +
                                                 message_name(f.type) + " (type " + std::to_string(f.type) +
                                                 ")");
}

}  // namespace wire

net::Frame encode(const Hello& m) {
  ByteWriter w;
  w.str(m.protocol);
  w.u16(m.version);
  w.str(m.client);
  wire::put_blob(w, m.body);
  return wire::frame(static_cast<std::uint16_t>(m.kType), w);
}

Hello decode_hello(const net::Frame& f) {
  return wire::read_payload<Hello>(f, error_name, name_or_unknown, [](ByteReader& r) {
    Hello m;
    m.protocol = r.str(kMaxProtocolName);
    m.version = r.u16();
    m.client = r.str(kMaxClientName);
    m.body = wire::get_blob(r, kMaxHelloBody, "hello body");
    return m;
  });
}

net::Frame encode(const ErrorMessage& m) {
  ByteWriter w;
  w.u16(m.code);
  w.str(m.text.substr(0, kMaxErrorText));
  return wire::frame(static_cast<std::uint16_t>(m.kType), w);
}

net::Frame encode_error(const net::Error& e) {
  // To a remote peer: no source locations (build internals); the local log keeps them.
  return encode(ErrorMessage{e.code(), without_location(e.message())});
}

ErrorMessage decode_error(const net::Frame& f) {
  return wire::read_payload<ErrorMessage>(f, error_name, name_or_unknown, [](ByteReader& r) {
    ErrorMessage m;
    m.code = r.u16();
    m.text = r.str(kMaxErrorText);
    return m;
  });
}

net::Frame encode(const Bye& m) {
  ByteWriter w;
  return wire::frame(static_cast<std::uint16_t>(m.kType), w);
}

Bye decode_bye(const net::Frame& f) {
  return wire::read_payload<Bye>(f, error_name, name_or_unknown, [](ByteReader&) { return Bye{}; });
}

}  // namespace veil::protocol
