#include "veil/protocol/ni/client.hpp"

#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"
#include "veil/net/tcp_channel.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::protocol::ni {

std::pair<std::string, std::uint16_t> parse_address(const std::string& a) {
  const auto colon = a.rfind(':');
  if (colon == std::string::npos || colon + 1 == a.size())
    throw net::Error(net::ErrorCode::kIo, "server address '" + a + "' is not HOST:PORT");
  std::string host = a.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port = a.substr(colon + 1);
  if (host.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) == 0 || std::stoul(port) > 65535)
    throw net::Error(net::ErrorCode::kIo, "server address '" + a + "' is not HOST:PORT");
  return {host, static_cast<std::uint16_t>(std::stoul(port))};
}

std::unique_ptr<net::Channel> connect(const std::string& host, std::uint16_t port, const ClientOptions& o) {
  net::ChannelOptions co;
  co.max_frame_bytes = o.max_frame_bytes;
  co.io_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000));
  co.idle_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.reply_timeout_s * 1000));
  return net::TcpChannel::connect(host, port, co);
}

nn::PublicModel public_model(const ServerInfo& info) {
  try {
    return nn::public_model(info);
  } catch (const net::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw protocol::error(protocol::ErrorCode::kBadMessage,
                          std::string("server's plan is inconsistent: ") + e.what());
  }
}

Client::Client(std::unique_ptr<net::Channel> channel, nn::Mode mode, const std::string& name)
    : Client(*channel, mode, name) {
  owned_ = std::move(channel);
}

Client::Client(net::Channel& channel, nn::Mode mode, const std::string& name) : channel_(&channel) {
  info_ = decode<ServerInfo>(exchange(encode(Hello{kName, kVersion, name, encode_open(OpenBody{mode})})));
  if (info_.mode != mode)
    throw protocol::error(protocol::ErrorCode::kBadMessage, "the server answered for another mode");
  model_ = public_model(info_);
}

Client::~Client() = default;

bool Client::query_keys(const KeyHash& hash) {
  const KeyStatus s = decode<KeyStatus>(exchange(encode(KeyQuery{hash})));
  if (s.hash != hash) throw protocol::error(protocol::ErrorCode::kBadMessage, "key status for other keys");
  return s.ready;
}

void Client::upload_keys(const Bytes& relin, const Bytes& galois, const Bytes& ring) {
  // Each Galois key set in pieces, each sent as it is framed: neither side holds a whole
  // set's bytes twice, and no frame is larger than kKeyPieceBytes (or one key).
  const nn::SmallRingKeyParts small = nn::split_small_ring_keys(ring);
  const auto pieces = rlwe::galois_key_pieces(*model_.context, galois, kKeyPieceBytes);
  std::vector<std::span<const std::uint8_t>> small_pieces;
  if (!small.galois.empty())
    small_pieces = rlwe::galois_key_pieces(*model_.result_context, small.galois, kKeyPieceBytes);
  const auto copy = [](std::span<const std::uint8_t> b) { return Bytes(b.begin(), b.end()); };
  send(encode(UploadKeys{relin,
                         copy(small.relin),
                         copy(small.ring_switch),
                         {galois.size(), static_cast<std::uint32_t>(pieces.size())},
                         {small.galois.size(), static_cast<std::uint32_t>(small_pieces.size())}}));
  std::vector<std::span<const std::uint8_t>> all(pieces.begin(), pieces.end());
  all.insert(all.end(), small_pieces.begin(), small_pieces.end());
  for (std::size_t i = 0; i + 1 < all.size(); ++i) send(encode_galois_keys_piece(all[i]));
  const KeyStatus s = decode<KeyStatus>(exchange(encode_galois_keys_piece(all.back())));
  if (!s.ready || s.hash != hash_keys(relin, galois, ring))
    throw protocol::error(protocol::ErrorCode::kBadMessage, "the server did not confirm the uploaded keys");
}

Client::Reply Client::infer(const std::vector<ckks::Ciphertext>& inputs, std::size_t images) {
  const auto& ctx = *model_.context;
  Infer req;
  req.images = static_cast<std::uint32_t>(images);
  for (const auto& c : inputs) req.ciphertexts.push_back(ckks::save_ciphertext(ctx, c, true));
  net::Frame f = encode(req);
  req.ciphertexts.clear();
  const Result res = decode<Result>(exchange(f));
  f.payload = {};
  if (res.ciphertexts.size() != info_.output_ciphertexts)
    throw protocol::error(protocol::ErrorCode::kBadMessage,
                          "expected " + std::to_string(info_.output_ciphertexts) +
                              " result ciphertexts, got " + std::to_string(res.ciphertexts.size()));
  Reply r;
  r.queue_seconds = res.queue_seconds;
  r.eval_seconds = res.eval_seconds;
  try {
    for (const auto& b : res.ciphertexts)
      r.outputs.push_back(ckks::load_ciphertext(*model_.result_context, b));
  } catch (const std::exception& e) {
    throw protocol::error(protocol::ErrorCode::kBadMessage,
                          std::string("result ciphertext does not load: ") + e.what());
  }
  return r;
}

net::Frame Client::exchange(const net::Frame& request) {
  send(request);
  return channel_->receive();
}

void Client::send(const net::Frame& request) {
  try {
    channel_->send(request);
  } catch (const net::Error& e) {
    if (!e.is(net::ErrorCode::kClosed) && !e.is(net::ErrorCode::kIo)) throw;
    net::Frame reason;
    try {
      reason = channel_->receive();
    } catch (const net::Error&) {
      reason.type = 0;  // nothing readable: report the broken connection
    }
    if (reason.type == static_cast<std::uint16_t>(HostMessage::kError)) {
      const auto m = decode_error(reason);
      throw net::Error(m.code, error_name(m.code), m.text);
    }
    throw;
  }
}

void Client::bye() noexcept {
  try {
    channel_->send(encode(Bye{}));
  } catch (...) {
  }
  channel_->close();
}

}  // namespace veil::protocol::ni
