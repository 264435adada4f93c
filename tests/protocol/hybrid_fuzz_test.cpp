// The hybrid protocol's messages (protocol/hybrid/messages.hpp) under random corruption of
// valid encodings: flipped bytes, truncation, appended and inserted bytes, oversized
// counts in the payload, and frames of the wrong type. Decoding either throws net::Error
// (bad or unexpected message) or yields exactly what the bytes say: re-encoding the
// decoded message gives the same payload. Never another exception or a crash; no
// allocation follows a corrupt count (the ASan run covers this suite). Fixed seeds.
#include <gtest/gtest.h>

#include <random>

#include "mutate_util.hpp"
#include "veil/protocol/hybrid/messages.hpp"

namespace veil::protocol::hybrid {
namespace {

struct Outcome {
  int accepted = 0, refused = 0;
};

template <class T>
void fuzz_one(const T& valid, std::mt19937_64& g, int cases, Outcome& o) {
  const net::Frame f = encode(valid);
  for (int t = 0; t < cases; ++t) {
    net::Frame m{f.type, test::mutate(f.payload, g)};
    if (g() % 16 == 0) m.type = static_cast<std::uint16_t>(g() % 40);  // the wrong type, now and then
    try {
      const T got = decode<T>(m);
      ++o.accepted;
      ASSERT_EQ(m.type, static_cast<std::uint16_t>(T::kType))
          << "a frame of type " << m.type << " was accepted";
      ASSERT_EQ(encode(got).payload, m.payload)
          << message_name(m.type) << " case " << t << ": accepted bytes that do not round-trip";
    } catch (const net::Error&) {
      // A bad or unexpected message, or (a mutated type 9) the peer's Error: refused.
      ++o.refused;
    }
  }
}

TEST(HybridMessagesFuzz, CorruptMessagesAreRefusedOrExact) {
  std::mt19937_64 g(1603);
  ServerInfo info;
  info.model = "fashion-delphi";
  info.dataset = "fashion-mnist";
  info.input = {1, 28, 28};
  info.mean = {0.2860};
  info.std = {0.3530};
  for (int c = 0; c < 10; ++c) info.classes.push_back("class " + std::to_string(c));
  info.program = Bytes(700, 0x5a);
  info.linear_parameters = Bytes(90, 1);
  info.beaver_parameters = Bytes(110, 2);
  info.max_materials = 8;
  info.max_material_age_s = 600;
  info.max_frame_bytes = 1 << 26;
  MaterialId id{};
  for (std::size_t k = 0; k < id.size(); ++k) id[k] = static_cast<std::uint8_t>(17 * k + 3);
  Outcome o;
  fuzz_one(info, g, 5000, o);
  fuzz_one(KeysAccepted{}, g, 500, o);
  fuzz_one(Preprocess{}, g, 500, o);
  fuzz_one(Preprocessing{id}, g, 1000, o);
  fuzz_one(Online{id}, g, 1000, o);
  fuzz_one(OnlineAccepted{id}, g, 1000, o);
  std::printf("  %d corrupt messages refused, %d accepted (exact round trip)\n", o.refused, o.accepted);
  EXPECT_GT(o.refused, 3000);  // flipped bytes inside names, blobs and ids are valid messages
}

}  // namespace
}  // namespace veil::protocol::hybrid
