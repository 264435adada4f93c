#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"

#include <cstring>

#include "test_util.hpp"

namespace veil::ckks {
namespace {

using test::precision_bits;
using test::random_complex;

class SerializeTest : public ::testing::Test {
 protected:
  SerializeTest() : f(test::toy_params(10, 3, 2)) {}
  test::Fixture f;
};

TEST_F(SerializeTest, ParametersRoundTripAndInsecureNeedsOptIn) {
  auto bytes = save_parameters(f.ctx->params());
  EXPECT_THROW(load_parameters(bytes), std::runtime_error);  // toy parameters are insecure
  auto p = load_parameters(bytes, true);
  EXPECT_EQ(p.q, f.ctx->params().q);
  EXPECT_EQ(p.p, f.ctx->params().p);
  EXPECT_EQ(CkksContext(p).param_id(), f.ctx->param_id());
}

TEST_F(SerializeTest, CiphertextRoundTripPlainAndSeedCompressed) {
  auto v = random_complex(512, 1);
  auto ct = f.encrypt(v);
  auto full = save_ciphertext(*f.ctx, ct);
  auto back = load_ciphertext(*f.ctx, full);
  EXPECT_EQ(back.data(), ct.data());
  EXPECT_EQ(back.scale(), ct.scale());

  Encryptor sym(f.ctx, f.keygen->secret_key());
  auto sct = sym.encrypt(f.encoder->encode(v, f.scale(), 3));
  auto packed = save_ciphertext(*f.ctx, sct);
  auto unpacked = save_ciphertext(*f.ctx, sct, false);
  EXPECT_LT(packed.size(), unpacked.size() / 2 + 64);  // c1 replaced by 32 bytes
  auto sback = load_ciphertext(*f.ctx, packed);
  EXPECT_EQ(sback.data(), sct.data());
  EXPECT_GT(precision_bits(f.decrypt(sback), v), 22);
}

TEST_F(SerializeTest, KeysRoundTripAndStillWork) {
  auto gk = f.keygen->create_galois_keys({1, 3}, true);
  gk.keys.merge(f.keygen->create_galois_keys({5}, false, 1).keys);  // a key below the top level
  auto sk = load_secret_key(*f.ctx, save_secret_key(*f.ctx, f.keygen->secret_key()));
  EXPECT_EQ(sk.data(), f.keygen->secret_key().data());
  auto pk = load_public_key(*f.ctx, save_public_key(*f.ctx, f.pk));
  EXPECT_EQ(pk.a, f.pk.a);
  EXPECT_EQ(pk.b, f.pk.b);
  for (bool compress : {true, false}) {
    auto rk_bytes = save_relin_keys(*f.ctx, f.rk, compress);
    auto rk = load_relin_keys(*f.ctx, rk_bytes);
    EXPECT_EQ(rk.key.a, f.rk.key.a);
    EXPECT_EQ(rk.key.b, f.rk.key.b);
    EXPECT_EQ(saved_size(*f.ctx, f.rk, compress), rk_bytes.size());
    const auto gk_bytes = save_galois_keys(*f.ctx, gk, compress);
    EXPECT_EQ(saved_size(*f.ctx, gk, compress), gk_bytes.size());
    auto gk2 = load_galois_keys(*f.ctx, gk_bytes);
    ASSERT_EQ(gk2.keys.size(), gk.keys.size());
    for (auto& [g, k] : gk.keys) EXPECT_EQ(gk2.keys.at(g).a, k.a);
  }
  EXPECT_LT(save_relin_keys(*f.ctx, f.rk, true).size(),
            save_relin_keys(*f.ctx, f.rk, false).size() / 2 + 128);
  auto pt = f.encoder->encode(random_complex(512, 2), f.scale(), 2);
  auto pt2 = load_plaintext(*f.ctx, save_plaintext(*f.ctx, pt));
  EXPECT_EQ(pt2.data(), pt.data());
}

// A Galois key set cut into pieces at key boundaries (the ni upload) loads piece by piece
// into the same keys as the whole set; pieces out of order, repeated, cut inside a key or
// beyond the announced keys are refused.
TEST_F(SerializeTest, GaloisKeysInPieces) {
  auto gk = f.keygen->create_galois_keys({1, 2, 3, 5}, true);
  gk.keys.merge(f.keygen->create_galois_keys({7}, false, 1).keys);  // a smaller key
  for (bool compress : {true, false}) {
    const Bytes whole = save_galois_keys(*f.ctx, gk, compress);
    const std::size_t key_bytes = whole.size() / gk.keys.size();
    for (std::size_t max : {std::size_t{1}, key_bytes + key_bytes / 2, 3 * key_bytes, whole.size()}) {
      const auto pieces = galois_key_pieces(*f.ctx, whole, max);
      std::size_t total = 0;
      for (const auto& p : pieces) total += p.size();
      EXPECT_EQ(total, whole.size());
      if (max == 1) {
        EXPECT_EQ(pieces.size(), gk.keys.size());
      }
      if (max == whole.size()) {
        EXPECT_EQ(pieces.size(), 1u);
      }
      GaloisKeyPieceReader reader(*f.ctx);
      GaloisKeys back;
      std::vector<std::pair<std::uint32_t, int>> headers;
      for (const auto& p : pieces) {
        EXPECT_FALSE(reader.complete());
        const auto keys = reader.peek(p);
        // At most `max` bytes, or a single key (the first piece also holds the header).
        EXPECT_TRUE(p.size() <= max || keys.size() == 1) << p.size() << " bytes, max " << max;
        EXPECT_GE(keys.size(), 1u);
        headers.insert(headers.end(), keys.begin(), keys.end());
        reader.read(p, back);
      }
      EXPECT_TRUE(reader.complete());
      EXPECT_EQ(headers, peek_galois_keys(*f.ctx, whole));
      ASSERT_EQ(back.keys.size(), gk.keys.size());
      for (const auto& [g, k] : gk.keys) {
        EXPECT_EQ(back.keys.at(g).a, k.a);
        EXPECT_EQ(back.keys.at(g).b, k.b);
      }
    }
    const auto pieces = galois_key_pieces(*f.ctx, whole, 1);
    ASSERT_GE(pieces.size(), 3u);
    const auto refused = [&](const std::vector<std::span<const std::uint8_t>>& order) {
      GaloisKeyPieceReader reader(*f.ctx);
      GaloisKeys into;
      try {
        for (const auto& p : order) reader.read(p, into);
        return !reader.complete();  // short of the announced keys: not loaded
      } catch (const std::runtime_error&) {
        return true;
      }
    };
    EXPECT_FALSE(refused(pieces));
    EXPECT_TRUE(refused({pieces[1], pieces[0]}));                              // the header first
    EXPECT_TRUE(refused({pieces[0], pieces[1], pieces[1]}));                   // a key twice
    EXPECT_TRUE(refused({pieces.begin(), pieces.end() - 1}));                  // a key short
    EXPECT_TRUE(refused({pieces[0], pieces[1].first(pieces[1].size() / 2)}));  // cut inside a key
    std::vector<std::span<const std::uint8_t>> extra(pieces.begin(), pieces.end());
    extra.push_back(pieces[1]);  // beyond the announced count and length
    EXPECT_TRUE(refused(extra));
  }
}

TEST_F(SerializeTest, TruncatedCorruptedAndMismatchedInputsAreRejected) {
  auto ct = f.encrypt(random_complex(512, 3));
  auto bytes = save_ciphertext(*f.ctx, ct);
  // Every truncation point.
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, kHeaderSize - 1, kHeaderSize, kHeaderSize + 10,
                          bytes.size() / 2, bytes.size() - 1}) {
    std::vector<std::uint8_t> t(bytes.begin(), bytes.begin() + cut);
    EXPECT_THROW(load_ciphertext(*f.ctx, t), std::runtime_error) << "cut at " << cut;
  }
  auto bad = bytes;
  bad[0] ^= 1;
  EXPECT_THROW(load_ciphertext(*f.ctx, bad), std::runtime_error);  // magic
  bad = bytes;
  bad[4] = 99;
  EXPECT_THROW(load_ciphertext(*f.ctx, bad), std::runtime_error);  // version
  bad = bytes;
  bad[kHeaderSize + 4] = 200;  // level 200
  EXPECT_THROW(load_ciphertext(*f.ctx, bad), std::runtime_error);
  bad = bytes;
  bad[kHeaderSize] = 9;  // 9 polynomials
  EXPECT_THROW(load_ciphertext(*f.ctx, bad), std::runtime_error);
  bad = bytes;
  for (std::size_t i = kHeaderSize + 24; i < kHeaderSize + 24 + 16; ++i) bad[i] = 0xff;  // residues >= q
  EXPECT_THROW(load_ciphertext(*f.ctx, bad), std::runtime_error);
  // Oversized: a body length claiming 2^62 bytes is refused before any allocation.
  bad = bytes;
  const std::uint64_t huge = std::uint64_t{1} << 62;
  std::memcpy(bad.data() + 20, &huge, 8);
  EXPECT_THROW(load_ciphertext(*f.ctx, bad), std::runtime_error);
  // Galois key count beyond N.
  auto gk = save_galois_keys(*f.ctx, f.keygen->create_galois_keys({1}));
  const std::uint32_t many = 1u << 30;
  std::memcpy(gk.data() + kHeaderSize, &many, 4);
  EXPECT_THROW(load_galois_keys(*f.ctx, gk), std::runtime_error);
  // Wrong object type and wrong parameters.
  EXPECT_THROW(load_public_key(*f.ctx, bytes), std::runtime_error);
  test::Fixture other(test::toy_params(10, 2));
  EXPECT_THROW(load_ciphertext(*other.ctx, bytes), std::runtime_error);
  EXPECT_THROW(read_file("/nonexistent/veil.bin"), std::runtime_error);
}

TEST_F(SerializeTest, RandomCorruptionNeverCrashes) {
  auto bytes = save_relin_keys(*f.ctx, f.rk);
  std::mt19937_64 g(5);
  for (int trial = 0; trial < 200; ++trial) {
    auto b = bytes;
    const std::size_t pos = g() % std::min<std::size_t>(b.size(), 200);
    b[pos] ^= static_cast<std::uint8_t>(1 + g() % 255);
    try {
      load_relin_keys(*f.ctx, b);
    } catch (const std::runtime_error&) {
    }
  }
  SUCCEED();
}

}  // namespace
}  // namespace veil::ckks
