#include "veil/protocol/ni/messages.hpp"

#include <sodium.h>

#include <cmath>
#include <cstdio>

#include "veil/common/bytes.hpp"
#include "veil/protocol/wire.hpp"

namespace veil::protocol::ni {

using wire::get_blob;
using wire::get_blobs;
using wire::get_card;
using wire::get_int;
using wire::get_ints;
using wire::put_blob;
using wire::put_blobs;
using wire::put_card;
using wire::put_ints;

std::string error_name(std::uint16_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kBadKeys:
      return "bad keys";
    case ErrorCode::kBadCiphertexts:
      return "bad ciphertexts";
    case ErrorCode::kNoKeys:
      return "no keys";
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
    case MessageType::kKeyQuery:
      return "KeyQuery";
    case MessageType::kKeyStatus:
      return "KeyStatus";
    case MessageType::kUploadKeys:
      return "UploadKeys";
    case MessageType::kInfer:
      return "Infer";
    case MessageType::kResult:
      return "Result";
    case MessageType::kGaloisKeysPiece:
      return "GaloisKeysPiece";
  }
  const char* host = host_message_name(type);
  return host ? host : "unknown message";
}

namespace {

nn::Mode get_mode(ByteReader& r) {
  const std::uint8_t m = r.u8();
  VEIL_CHECK_IO(m < nn::kPackingModeCount, "unknown mode " << int{m});
  return static_cast<nn::Mode>(m);
}

// The Mode's value (0 latency, 1 throughput).
std::uint8_t mode_byte(nn::Mode m) { return static_cast<std::uint8_t>(m); }

// This protocol's messages: framed and read by the shared codec.
const wire::Codec<MessageType> codec(error_name, message_name);

}  // namespace

Bytes encode_open(const OpenBody& m) {
  ByteWriter w;
  w.u8(mode_byte(m.mode));
  return w.take();
}

OpenBody decode_open(const Bytes& body) {
  try {
    ByteReader r(body);
    OpenBody m;
    m.mode = get_mode(r);
    r.expect_end();
    return m;
  } catch (const std::exception& e) {
    throw protocol::error(protocol::ErrorCode::kBadMessage, std::string("malformed Hello body: ") + e.what());
  }
}

net::Frame encode(const ServerInfo& m) {
  ByteWriter w;
  put_card(w, m);
  w.u8(mode_byte(m.mode));
  put_blob(w, m.parameters);
  w.u64(m.slots);
  nn::write_layout(w, m.input_layout);
  nn::write_layout(w, m.output_layout);
  put_ints(w, m.rotation_steps);
  put_ints(w, m.rotation_key_levels);
  w.u32(m.max_batch);
  w.u32(m.input_ciphertexts);
  w.u32(m.output_ciphertexts);
  w.u64(m.max_frame_bytes);
  put_blob(w, m.small_parameters);
  w.u32(static_cast<std::uint32_t>(m.switch_after));
  put_ints(w, m.small_rotation_steps);
  put_ints(w, m.small_rotation_key_levels);
  w.u32(static_cast<std::uint32_t>(m.conjugation_key_level));
  w.u32(static_cast<std::uint32_t>(m.small_conjugation_key_level));
  return codec.frame(m.kType, w);
}

template <>
ServerInfo decode<ServerInfo>(const net::Frame& f) {
  return codec.read<ServerInfo>(f, [](ByteReader& r) {
    ServerInfo m;
    get_card(r, m);
    m.mode = get_mode(r);
    m.parameters = get_blob(r, kMaxParameterBytes, "parameters");
    m.slots = r.u64();
    m.input_layout = nn::read_layout(r, "input layout");
    m.output_layout = nn::read_layout(r, "output layout");
    m.rotation_steps = get_ints(r, kMaxRotations, "rotation steps");
    m.rotation_key_levels = get_ints(r, kMaxRotations, "rotation key levels");
    VEIL_CHECK_IO(m.rotation_steps.size() == m.rotation_key_levels.size(),
                  "rotation steps and levels differ in count");
    m.max_batch = r.u32();
    m.input_ciphertexts = r.u32();
    m.output_ciphertexts = r.u32();
    m.max_frame_bytes = r.u64();
    m.small_parameters = get_blob(r, kMaxParameterBytes, "smaller ring's parameters");
    m.switch_after = static_cast<std::int32_t>(r.u32());
    m.small_rotation_steps = get_ints(r, kMaxRotations, "smaller ring's rotation steps");
    m.small_rotation_key_levels = get_ints(r, kMaxRotations, "smaller ring's rotation key levels");
    VEIL_CHECK_IO(m.small_rotation_steps.size() == m.small_rotation_key_levels.size(),
                  "smaller ring's rotation steps and levels differ in count");
    m.conjugation_key_level = static_cast<std::int32_t>(r.u32());
    m.small_conjugation_key_level = static_cast<std::int32_t>(r.u32());
    VEIL_CHECK_IO(m.slots >= 1 && m.slots <= (std::uint64_t{1} << 16) && m.max_batch >= 1 &&
                      m.max_batch <= m.slots && m.input_ciphertexts >= 1 &&
                      m.input_ciphertexts <= kMaxCiphertexts && m.output_ciphertexts >= 1 &&
                      m.output_ciphertexts <= kMaxCiphertexts,
                  "slot, batch or ciphertext counts out of range");
    return m;
  });
}

net::Frame encode(const KeyQuery& m) {
  ByteWriter w;
  w.raw(m.hash.data(), m.hash.size());
  return codec.frame(m.kType, w);
}

template <>
KeyQuery decode<KeyQuery>(const net::Frame& f) {
  return codec.read<KeyQuery>(f, [](ByteReader& r) {
    KeyQuery m;
    r.raw(m.hash.data(), m.hash.size());
    return m;
  });
}

net::Frame encode(const KeyStatus& m) {
  ByteWriter w;
  w.u8(m.ready ? 1 : 0);
  w.raw(m.hash.data(), m.hash.size());
  return codec.frame(m.kType, w);
}

template <>
KeyStatus decode<KeyStatus>(const net::Frame& f) {
  return codec.read<KeyStatus>(f, [](ByteReader& r) {
    KeyStatus m;
    const std::uint8_t b = r.u8();
    VEIL_CHECK_IO(b <= 1, "bad flag " << int{b});
    m.ready = b == 1;
    r.raw(m.hash.data(), m.hash.size());
    return m;
  });
}

net::Frame encode(const UploadKeys& m) {
  ByteWriter w;
  put_blob(w, m.relin);
  put_blob(w, m.small_relin);
  put_blob(w, m.ring_switch);
  for (const KeySetPieces& k : {m.galois, m.small_galois}) {
    w.u64(k.bytes);
    w.u32(k.pieces);
  }
  return codec.frame(m.kType, w);
}

UploadKeysView decode_upload_keys_view(const net::Frame& f) {
  return codec.read<UploadKeysView>(f, [](ByteReader& r) {
    UploadKeysView m;
    m.relin = wire::get_blob_view(r, r.remaining(), "relinearisation key");
    m.small_relin = wire::get_blob_view(r, r.remaining(), "smaller ring's relinearisation key");
    m.ring_switch = wire::get_blob_view(r, r.remaining(), "ring-switching key");
    for (KeySetPieces* k : {&m.galois, &m.small_galois}) {
      k->bytes = r.u64();
      k->pieces = r.u32();
    }
    return m;
  });
}

template <>
UploadKeys decode<UploadKeys>(const net::Frame& f) {
  const UploadKeysView v = decode_upload_keys_view(f);
  const auto copy = [](std::span<const std::uint8_t> b) { return Bytes(b.begin(), b.end()); };
  return {copy(v.relin), copy(v.small_relin), copy(v.ring_switch), v.galois, v.small_galois};
}

net::Frame encode_galois_keys_piece(std::span<const std::uint8_t> piece) {
  ByteWriter w;
  put_blob(w, piece);
  return codec.frame(GaloisKeysPiece::kType, w);
}

net::Frame encode(const GaloisKeysPiece& m) { return encode_galois_keys_piece(m.piece); }

namespace {
struct PieceView {
  static constexpr MessageType kType = MessageType::kGaloisKeysPiece;
  std::span<const std::uint8_t> piece;
};
}  // namespace

std::span<const std::uint8_t> decode_galois_keys_piece_view(const net::Frame& f) {
  using View = PieceView;
  return codec
      .read<View>(
          f, [](ByteReader& r) { return View{wire::get_blob_view(r, r.remaining(), "Galois keys piece")}; })
      .piece;
}

template <>
GaloisKeysPiece decode<GaloisKeysPiece>(const net::Frame& f) {
  const auto v = decode_galois_keys_piece_view(f);
  return {Bytes(v.begin(), v.end())};
}

net::Frame encode(const Infer& m) {
  ByteWriter w;
  w.u32(m.images);
  put_blobs(w, m.ciphertexts);
  return codec.frame(m.kType, w);
}

template <>
Infer decode<Infer>(const net::Frame& f) {
  return codec.read<Infer>(f, [](ByteReader& r) {
    Infer m;
    m.images = r.u32();
    VEIL_CHECK_IO(m.images >= 1, "a request holds at least one image");
    m.ciphertexts = get_blobs(r, kMaxCiphertexts, "ciphertexts");
    return m;
  });
}

net::Frame encode(const Result& m) {
  ByteWriter w;
  w.f64(m.queue_seconds);
  w.f64(m.eval_seconds);
  put_blobs(w, m.ciphertexts);
  return codec.frame(m.kType, w);
}

template <>
Result decode<Result>(const net::Frame& f) {
  return codec.read<Result>(f, [](ByteReader& r) {
    Result m;
    m.queue_seconds = r.f64();
    m.eval_seconds = r.f64();
    m.ciphertexts = get_blobs(r, kMaxCiphertexts, "ciphertexts");
    return m;
  });
}

// Domain-separated, length-prefixed: (relin, galois, ring) triples cannot collide by
// moving bytes from one blob to another.
KeyHasher::KeyHasher() {
  static const char kDomain[] = "veil evaluation keys v2";
  crypto_generichash_init(&state_, nullptr, 0, crypto_generichash_BYTES);
  crypto_generichash_update(&state_, reinterpret_cast<const unsigned char*>(kDomain), sizeof kDomain);
}

void KeyHasher::begin(std::uint64_t blob_bytes) {
  std::uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(blob_bytes >> (8 * i));
  crypto_generichash_update(&state_, len, sizeof len);
}

void KeyHasher::update(std::span<const std::uint8_t> bytes) {
  crypto_generichash_update(&state_, bytes.data(), bytes.size());
}

KeyHash KeyHasher::finish() {
  KeyHash h{};
  static_assert(crypto_generichash_BYTES == 32);
  crypto_generichash_final(&state_, h.data(), h.size());
  return h;
}

KeyHash hash_keys(std::span<const std::uint8_t> relin, std::span<const std::uint8_t> galois,
                  std::span<const std::uint8_t> ring) {
  KeyHasher h;
  for (const auto b : {relin, galois, ring}) h.blob(b);
  return h.finish();
}

std::string hex(const KeyHash& h, std::size_t bytes) {
  return veil::hex(std::span<const std::uint8_t>(h).first(std::min(bytes, h.size())));
}

}  // namespace veil::protocol::ni
