// libFuzzer target: the frame parser, every message decoder, and the CKKS loaders the
// server runs on UploadKeys, GaloisKeysPiece and Infer payloads (and the client on Result). Any input
// must either parse or throw one of veil's exceptions: no crash, no sanitizer report,
// no allocation beyond what the bytes justify.
//
//   scripts/fuzz.sh [seconds]    (builds with clang -fsanitize=fuzzer,address,undefined)
#include <cstdint>
#include <exception>
#include <span>

#include "fuzz_common.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"
#include "veil/net/frame.hpp"
#include "veil/protocol/hello.hpp"
#include "veil/protocol/ni/messages.hpp"

using namespace veil;
namespace ni = protocol::ni;
using ni::MessageType;
using protocol::HostMessage;

namespace {

void load_ciphertexts(const std::vector<ni::Bytes>& cts) {
  for (const auto& b : cts) {
    try {
      (void)ckks::load_ciphertext(*fuzz::context(), b);
    } catch (const std::exception&) {
    }
  }
}

void decode(const net::Frame& f) {
  switch (static_cast<HostMessage>(f.type)) {
    case HostMessage::kHello: {
      const auto hello = protocol::decode_hello(f);
      (void)ni::decode_open(hello.body);
      return;
    }
    case HostMessage::kError:
      (void)protocol::decode_error(f);
      return;
    case HostMessage::kBye:
      (void)protocol::decode_bye(f);
      return;
  }
  switch (static_cast<MessageType>(f.type)) {
    case MessageType::kServerInfo: {
      const auto info = ni::decode<ni::ServerInfo>(f);
      (void)ckks::load_parameters(info.parameters);
      break;
    }
    case MessageType::kKeyQuery:
      (void)ni::decode<ni::KeyQuery>(f);
      break;
    case MessageType::kKeyStatus:
      (void)ni::decode<ni::KeyStatus>(f);
      break;
    case MessageType::kUploadKeys:
      (void)rlwe::load_relin_keys(*fuzz::context(), ni::decode<ni::UploadKeys>(f).relin);
      break;
    case MessageType::kGaloisKeysPiece: {
      // As the server takes a set's first piece: headers, then the keys.
      const auto piece = ni::decode_galois_keys_piece_view(f);
      rlwe::GaloisKeyPieceReader reader(*fuzz::context());
      (void)reader.peek(piece);
      rlwe::GaloisKeys keys;
      reader.read(piece, keys);
      break;
    }
    case MessageType::kInfer:
      load_ciphertexts(ni::decode<ni::Infer>(f).ciphertexts);
      break;
    case MessageType::kResult:
      load_ciphertexts(ni::decode<ni::Result>(f).ciphertexts);
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    decode(net::parse_frame(std::span(data, size), fuzz::kMaxPayload));
  } catch (const std::exception&) {
    // Refusals are the expected outcome for most inputs.
  }
  return 0;
}
