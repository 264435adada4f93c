#include "veil/protocol/hybrid/messages.hpp"

#include <cmath>
#include <cstdio>

#include "veil/bfv/serialize.hpp"
#include "veil/protocol/wire.hpp"

namespace veil::protocol::hybrid {

using wire::get_blob;
using wire::get_card;
using wire::put_blob;
using wire::put_card;
namespace lib = veil::hybrid;

std::string hex(const MaterialId& id) { return veil::hex(id); }

std::string error_name(std::uint16_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kBadKeys:
      return "bad keys";
    case ErrorCode::kNoKeys:
      return "no keys";
    case ErrorCode::kUnknownMaterial:
      return "unknown material";
    case ErrorCode::kMaterialUsed:
      return "material already used";
    case ErrorCode::kMaterialLimit:
      return "material limit";
    case ErrorCode::kMaterialExpired:
      return "material expired";
  }
  return protocol::error_name(code);
}

net::Error error(ErrorCode code, const std::string& message) {
  return net::Error(static_cast<std::uint16_t>(code), error_name(static_cast<std::uint16_t>(code)), message);
}

const char* message_name(std::uint16_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kServerInfo:
      return "ServerInfo";
    case MessageType::kKeysAccepted:
      return "KeysAccepted";
    case MessageType::kPreprocess:
      return "Preprocess";
    case MessageType::kPreprocessing:
      return "Preprocessing";
    case MessageType::kOnline:
      return "Online";
    case MessageType::kOnlineAccepted:
      return "OnlineAccepted";
  }
  switch (static_cast<lib::Message>(type)) {
    case lib::Message::kKeys:
      return "Keys";
    case lib::Message::kLinearRequest:
      return "LinearRequest";
    case lib::Message::kLinearResponse:
      return "LinearResponse";
    case lib::Message::kBeaverRequest:
      return "BeaverRequest";
    case lib::Message::kBeaverResponse:
      return "BeaverResponse";
    case lib::Message::kShares:
      return "Shares";
  }
  const char* host = host_message_name(type);
  return host ? host : "unknown message";
}

namespace {

// This protocol's messages: framed and read by the shared codec.
const wire::Codec<MessageType> codec(error_name, message_name);

template <class T>
net::Frame encode_id(const T& m) {
  ByteWriter w;
  w.raw(m.id.data(), m.id.size());
  return codec.frame(T::kType, w);
}

template <class T>
T decode_id(const net::Frame& f) {
  return codec.read<T>(f, [](ByteReader& r) {
    T m;
    r.raw(m.id.data(), m.id.size());
    return m;
  });
}

}  // namespace

Bytes encode_open() { return {}; }

void decode_open(const Bytes& body) {
  if (!body.empty())
    throw protocol::error(protocol::ErrorCode::kBadMessage,
                          "malformed Hello body: the hybrid protocol v" + std::to_string(kVersion) +
                              " takes none, got " + std::to_string(body.size()) + " bytes");
}

net::Frame encode(const ServerInfo& m) {
  ByteWriter w;
  put_card(w, m);
  put_blob(w, m.program);
  put_blob(w, m.linear_parameters);
  put_blob(w, m.beaver_parameters);
  w.u32(m.max_materials);
  w.f64(m.max_material_age_s);
  w.u64(m.max_frame_bytes);
  return codec.frame(m.kType, w);
}

template <>
ServerInfo decode<ServerInfo>(const net::Frame& f) {
  return codec.read<ServerInfo>(f, [](ByteReader& r) {
    ServerInfo m;
    get_card(r, m);
    m.program = get_blob(r, kMaxProgramBytes, "public program");
    m.linear_parameters = get_blob(r, kMaxParameterBytes, "linear parameters");
    m.beaver_parameters = get_blob(r, kMaxParameterBytes, "Beaver parameters");
    m.max_materials = r.u32();
    m.max_material_age_s = r.f64();
    m.max_frame_bytes = r.u64();
    VEIL_CHECK_IO(m.max_materials >= 1 && m.max_materials <= 1024, "material limit out of range");
    VEIL_CHECK_IO(std::isfinite(m.max_material_age_s) && m.max_material_age_s > 0,
                  "material age out of range");
    return m;
  });
}

net::Frame encode(const KeysAccepted&) {
  ByteWriter w;
  return codec.frame(KeysAccepted::kType, w);
}
net::Frame encode(const Preprocess&) {
  ByteWriter w;
  return codec.frame(Preprocess::kType, w);
}
net::Frame encode(const Preprocessing& m) { return encode_id(m); }
net::Frame encode(const Online& m) { return encode_id(m); }
net::Frame encode(const OnlineAccepted& m) { return encode_id(m); }

template <>
KeysAccepted decode<KeysAccepted>(const net::Frame& f) {
  return codec.read_empty<KeysAccepted>(f);
}
template <>
Preprocess decode<Preprocess>(const net::Frame& f) {
  return codec.read_empty<Preprocess>(f);
}
template <>
Preprocessing decode<Preprocessing>(const net::Frame& f) {
  return decode_id<Preprocessing>(f);
}
template <>
Online decode<Online>(const net::Frame& f) {
  return decode_id<Online>(f);
}
template <>
OnlineAccepted decode<OnlineAccepted>(const net::Frame& f) {
  return decode_id<OnlineAccepted>(f);
}

std::pair<Bytes, Bytes> parameter_blobs(const veil::hybrid::HeParameters& hp) {
  Bytes lin, bv;
  for (int r = 0; r < hp.residues(); ++r) {
    const Bytes l = bfv::save_parameters(hp.linear_of(r)->params()),
                b = bfv::save_parameters(hp.beaver_of(r)->params());
    lin.insert(lin.end(), l.begin(), l.end());
    bv.insert(bv.end(), b.begin(), b.end());
  }
  return {std::move(lin), std::move(bv)};
}

}  // namespace veil::protocol::hybrid
