// Writes one valid frame per message type into a directory: the fuzzer's seeds, so it
// starts from inputs that reach deep into the decoders and the CKKS loaders.
#include <cstdio>
#include <filesystem>
#include <string>

#include "fuzz_common.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"
#include "veil/protocol/hello.hpp"
#include "veil/protocol/ni/messages.hpp"
#include "veil/rlwe/keygen.hpp"

using namespace veil;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const auto& ctx = fuzz::context();
  rlwe::KeyGenerator keygen(ctx);
  ckks::CkksEncoder encoder(ctx);
  ckks::Encryptor encryptor(ctx, keygen.secret_key());
  const std::vector<double> values = {0.5, -1.0, 2.0};
  const auto ct = ckks::save_ciphertext(
      *ctx, encryptor.encrypt(encoder.encode(std::span<const double>(values), ctx->params().scale, 2)), true);

  protocol::ni::ServerInfo info;
  info.model = "seed";
  info.input = {1, 2, 2};
  info.classes = {"a", "b"};
  info.parameters = ckks::save_parameters(ctx->params());
  info.slots = 4;
  nn::Layout layout;  // set by hand: the fuzz build has no nn library
  layout.shape = info.input;
  layout.slots = 4;
  layout.channel_stride = 4;
  layout.row_stride = 2;
  layout.col_stride = 1;
  layout.channels_per_block = 1;
  info.input_layout = info.output_layout = layout;
  info.rotation_steps = {1};
  info.rotation_key_levels = {1};
  info.input_ciphertexts = info.output_ciphertexts = 1;

  const std::vector<std::pair<std::string, net::Frame>> seeds = {
      {"hello", protocol::encode(protocol::Hello{protocol::ni::kName, protocol::ni::kVersion, "seed",
                                                 protocol::ni::encode_open({nn::Mode::kLatency})})},
      {"server_info", protocol::ni::encode(info)},
      {"key_query", protocol::ni::encode(protocol::ni::KeyQuery{})},
      {"key_status", protocol::ni::encode(protocol::ni::KeyStatus{true, {}})},
      {"upload_keys",
       protocol::ni::encode(protocol::ni::UploadKeys{
           rlwe::save_relin_keys(*ctx, keygen.create_relin_keys(), true), {}, {}, {0, 1}, {}})},
      {"galois_keys_piece", protocol::ni::encode(protocol::ni::GaloisKeysPiece{
                                rlwe::save_galois_keys(*ctx, keygen.create_galois_keys({1, 2}), true)})},
      {"infer", protocol::ni::encode(protocol::ni::Infer{1, {ct, ct}})},
      {"result", protocol::ni::encode(protocol::ni::Result{0.1, 0.2, {ct}})},
      {"error", protocol::encode(protocol::ErrorMessage{11, "seed"})},
      {"bye", protocol::encode(protocol::Bye{})},
  };
  for (const auto& [name, frame] : seeds) {
    const auto bytes = net::encode_frame(frame);
    std::FILE* f = std::fopen((dir / name).string().c_str(), "wb");
    if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) return 1;
    std::fclose(f);
  }
  std::printf("%zu seeds in %s\n", seeds.size(), dir.string().c_str());
  return 0;
}
