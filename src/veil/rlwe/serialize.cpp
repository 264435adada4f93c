#include "veil/rlwe/serialize.hpp"

#include "veil/common/error.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::rlwe {

namespace {

constexpr std::uint32_t kMagic = 0x4c494556;  // "VEIL" little-endian

const char* type_name(ObjectType t) {
  switch (t) {
    case ObjectType::kParameters:
      return "parameters";
    case ObjectType::kSecretKey:
      return "secret key";
    case ObjectType::kPublicKey:
      return "public key";
    case ObjectType::kRelinKeys:
      return "relinearisation keys";
    case ObjectType::kGaloisKeys:
      return "Galois keys";
    case ObjectType::kPlaintext:
      return "plaintext";
    case ObjectType::kCiphertext:
      return "ciphertext";
    case ObjectType::kBfvParameters:
      return "BFV parameters";
    case ObjectType::kBfvCiphertext:
      return "BFV ciphertext";
    case ObjectType::kBfvResponse:
      return "BFV response";
    case ObjectType::kBfvPlaintext:
      return "BFV plaintext";
  }
  return "unknown object";
}

}  // namespace

Bytes finish_object(ObjectType type, std::uint32_t flags, std::uint64_t param_id, ByteWriter& body) {
  ByteWriter w;
  w.u32(kMagic);
  w.u16(kFormatVersion);
  w.u16(static_cast<std::uint16_t>(type));
  w.u32(flags);
  w.u64(param_id);
  w.u64(body.size());
  w.u32(0);
  // The header goes in front of the body in place: a saver that reserved room for both
  // (the keys, gigabytes for a deep network) then makes no second copy of its body.
  auto& b = body.buffer();
  b.insert(b.begin(), w.buffer().begin(), w.buffer().end());
  return body.take();
}

ObjectHeader read_object_header(ByteReader& r, bool partial) {
  VEIL_CHECK_IO(r.remaining() >= kHeaderSize,
                "input too short for a veil object header (" << r.remaining() << " bytes)");
  VEIL_CHECK_IO(r.u32() == kMagic, "not a veil object (bad magic bytes)");
  const std::uint16_t version = r.u16();
  VEIL_CHECK_IO(version == kFormatVersion, "unsupported format version "
                                               << version << " (this build reads version " << kFormatVersion
                                               << ")");
  ObjectHeader h;
  const std::uint16_t t = r.u16();
  VEIL_CHECK_IO(t >= 1 && t <= kMaxObjectType, "unknown object type " << t);
  h.type = static_cast<ObjectType>(t);
  h.flags = r.u32();
  VEIL_CHECK_IO((h.flags & ~kFlagCompressed) == 0, "unknown flags " << h.flags);
  h.param_id = r.u64();
  h.body_len = r.u64();
  r.u32();
  VEIL_CHECK_IO(h.body_len == r.remaining() || (partial && h.body_len > r.remaining()),
                "body length " << h.body_len << " does not match the " << r.remaining()
                               << " bytes present (truncated or padded)");
  return h;
}

ObjectHeader expect_object(ByteReader& r, const Context* ctx, ObjectType type, bool partial) {
  ObjectHeader h = read_object_header(r, partial);
  VEIL_CHECK_IO(h.type == type, "expected " << type_name(type) << ", found " << type_name(h.type));
  if (ctx) {
    VEIL_CHECK_IO(h.param_id == ctx->param_id(), type_name(type)
                                                     << " was made for other encryption parameters");
  }
  return h;
}

// Bytes of `limbs` packed residues for the given primes.
std::uint64_t packed_bytes(const Context& ctx, std::span<const std::size_t> primes) {
  std::uint64_t total = 0;
  for (auto p : primes) total += (ctx.n() * ctx.modulus(p).bits() + 7) / 8;
  return total;
}

void write_poly(ByteWriter& w, const Context& ctx, const u64* data, std::span<const std::size_t> primes) {
  const std::size_t n = ctx.n();
  for (std::size_t k = 0; k < primes.size(); ++k) {
    w.packed(std::span<const u64>(data + k * n, n), ctx.modulus(primes[k]).bits());
  }
}

void read_poly(ByteReader& r, const Context& ctx, u64* data, std::span<const std::size_t> primes,
               const char* what) {
  const std::size_t n = ctx.n();
  for (std::size_t k = 0; k < primes.size(); ++k) {
    const auto& q = ctx.modulus(primes[k]);
    std::span<u64> limb(data + k * n, n);
    r.packed(limb, q.bits());
    for (u64 v : limb)
      VEIL_CHECK_IO(v < q.value(), what << ": residue " << v << " is not below its prime " << q.value());
  }
}

void write_seed(ByteWriter& w, const Seed& s) { w.raw(s.data(), s.size()); }
Seed read_seed(ByteReader& r) {
  Seed s;
  r.raw(s.data(), s.size());
  return s;
}

void check_level(const Context& ctx, std::int64_t level, const char* what) {
  VEIL_CHECK_IO(level >= 0 && level <= ctx.max_level(),
                what << " level " << level << " outside 0.." << ctx.max_level());
}

namespace {

// --- key-switching keys (shared by relinearisation and Galois keys) ---
void write_switch_key(ByteWriter& w, const Context& ctx, const KeySwitchKey& k, bool compress) {
  w.u32(static_cast<std::uint32_t>(k.level));
  w.u32(static_cast<std::uint32_t>(k.num_digits()));
  auto idx = qp_indices(ctx, k.level);
  if (compress) write_seed(w, k.seed);
  const std::size_t n = ctx.n();
  std::vector<u64> words(idx.size() * n);
  auto write_key_poly = [&](const KeyPoly& p) {
    for (std::size_t t = 0; t < idx.size(); ++t) p.get(t, words.data() + t * n);
    write_poly(w, ctx, words.data(), idx);
  };
  for (std::size_t j = 0; j < k.num_digits(); ++j) {
    write_key_poly(k.b[j]);
    if (!compress) write_key_poly(k.a[j]);
  }
}

// write_switch_key's byte count.
std::uint64_t switch_key_size(const Context& ctx, const KeySwitchKey& k, bool compress) {
  return 8 + (compress ? 32 : 0) +
         k.num_digits() * packed_bytes(ctx, qp_indices(ctx, k.level)) * (compress ? 1 : 2);
}

KeySwitchKey read_switch_key(ByteReader& r, const Context& ctx, bool compressed) {
  KeySwitchKey k;
  const std::uint32_t level = r.u32();
  check_level(ctx, level, "key-switching key");
  k.level = static_cast<int>(level);
  const std::uint32_t digits = r.u32();
  VEIL_CHECK_IO(static_cast<int>(digits) == ctx.num_digits(k.level),
                "key-switching key has " << digits << " digits, expected " << ctx.num_digits(k.level));
  auto idx = qp_indices(ctx, k.level);
  const std::uint64_t per_poly = packed_bytes(ctx, idx);
  const std::uint64_t need = (compressed ? 32 : 0) + digits * per_poly * (compressed ? 1 : 2);
  VEIL_CHECK_IO(r.remaining() >= need,
                "key-switching key truncated: need " << need << " bytes, have " << r.remaining());
  if (compressed) k.seed = read_seed(r);
  k.param_id = ctx.param_id();
  const std::size_t n = ctx.n();
  const auto primes = prime_values(ctx, idx);
  std::vector<u64> words(idx.size() * n);
  for (std::uint32_t j = 0; j < digits; ++j) {
    read_poly(r, ctx, words.data(), idx, "key-switching key");
    k.b.emplace_back(n, primes, words.data());
    if (compressed) {
      expand_uniform(ctx, k.seed, (static_cast<std::uint64_t>(j) + 1) << 32, idx, words.data());
    } else {
      read_poly(r, ctx, words.data(), idx, "key-switching key");
    }
    k.a.emplace_back(n, primes, words.data());
  }
  return k;
}

}  // namespace

ObjectType peek_type(std::span<const std::uint8_t> data) {
  ByteReader r(data);
  return read_object_header(r).type;
}

Bytes save_secret_key(const Context& ctx, const SecretKey& sk) {
  VEIL_REQUIRE(sk.param_id() == ctx.param_id(), "secret key was made for other parameters");
  ByteWriter w;
  auto idx = qp_indices(ctx, ctx.max_level());
  write_poly(w, ctx, sk.data().data(), idx);
  return finish_object(ObjectType::kSecretKey, 0, ctx.param_id(), w);
}

SecretKey load_secret_key(const Context& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  expect_object(r, &ctx, ObjectType::kSecretKey);
  auto idx = qp_indices(ctx, ctx.max_level());
  VEIL_CHECK_IO(r.remaining() == packed_bytes(ctx, idx), "secret key body has the wrong length");
  SecretKey sk;
  sk.data().resize(idx.size() * ctx.n());
  read_poly(r, ctx, sk.data().data(), idx, "secret key");
  sk.set_param_id(ctx.param_id());
  return sk;
}

Bytes save_public_key(const Context& ctx, const PublicKey& pk, bool compress) {
  VEIL_REQUIRE(pk.param_id == ctx.param_id(), "public key was made for other parameters");
  ByteWriter w;
  auto idx = q_indices(ctx.max_level());
  write_poly(w, ctx, pk.b.data(), idx);
  if (compress) {
    write_seed(w, pk.seed);
  } else {
    write_poly(w, ctx, pk.a.data(), idx);
  }
  return finish_object(ObjectType::kPublicKey, compress ? kFlagCompressed : 0, ctx.param_id(), w);
}

PublicKey load_public_key(const Context& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  const ObjectHeader h = expect_object(r, &ctx, ObjectType::kPublicKey);
  const bool compressed = h.flags & kFlagCompressed;
  auto idx = q_indices(ctx.max_level());
  const std::uint64_t per = packed_bytes(ctx, idx);
  VEIL_CHECK_IO(r.remaining() == per + (compressed ? 32 : per), "public key body has the wrong length");
  PublicKey pk;
  pk.param_id = ctx.param_id();
  pk.b.resize(idx.size() * ctx.n());
  pk.a.resize(idx.size() * ctx.n());
  read_poly(r, ctx, pk.b.data(), idx, "public key");
  if (compressed) {
    pk.seed = read_seed(r);
    expand_uniform(ctx, pk.seed, 0, idx, pk.a.data());
  } else {
    read_poly(r, ctx, pk.a.data(), idx, "public key");
  }
  return pk;
}

Bytes save_relin_keys(const Context& ctx, const RelinKeys& rk, bool compress) {
  VEIL_REQUIRE(rk.key.param_id == ctx.param_id(), "relinearisation key was made for other parameters");
  ByteWriter w;
  w.buffer().reserve(saved_size(ctx, rk, compress));
  write_switch_key(w, ctx, rk.key, compress);
  return finish_object(ObjectType::kRelinKeys, compress ? kFlagCompressed : 0, ctx.param_id(), w);
}

RelinKeys load_relin_keys(const Context& ctx, std::span<const std::uint8_t> data) {
  ByteReader r(data);
  const ObjectHeader h = expect_object(r, &ctx, ObjectType::kRelinKeys);
  RelinKeys rk;
  rk.key = read_switch_key(r, ctx, h.flags & kFlagCompressed);
  r.expect_end();
  return rk;
}

Bytes save_galois_keys(const Context& ctx, const GaloisKeys& gk, bool compress) {
  ByteWriter w;
  w.buffer().reserve(saved_size(ctx, gk, compress));
  w.u32(static_cast<std::uint32_t>(gk.keys.size()));
  for (const auto& [g, k] : gk.keys) {
    VEIL_REQUIRE(k.param_id == ctx.param_id(), "Galois key was made for other parameters");
    w.u32(g);
    write_switch_key(w, ctx, k, compress);
  }
  return finish_object(ObjectType::kGaloisKeys, compress ? kFlagCompressed : 0, ctx.param_id(), w);
}

std::uint64_t saved_size(const Context& ctx, const RelinKeys& rk, bool compress) {
  return kHeaderSize + switch_key_size(ctx, rk.key, compress);
}

std::uint64_t saved_size(const Context& ctx, const GaloisKeys& gk, bool compress) {
  std::uint64_t bytes = kHeaderSize + 4;
  for (const auto& [g, k] : gk.keys) bytes += 4 + switch_key_size(ctx, k, compress);
  return bytes;
}

GaloisKeys load_galois_keys(const Context& ctx, std::span<const std::uint8_t> data) {
  GaloisKeyPieceReader reader(ctx);
  GaloisKeys gk;
  reader.read(data, gk);
  VEIL_CHECK_IO(reader.complete(), "Galois key set truncated: it announced more keys than it holds");
  return gk;
}

namespace {

// A Galois key set's header: the object's flags and the key count.
// `keys_len`: where given, the set may continue beyond `r` (the first of its pieces), and
// this is the announced length of its keys (the body after the count).
std::uint32_t read_galois_header(ByteReader& r, const Context& ctx, bool& compressed,
                                 std::uint64_t* keys_len = nullptr) {
  const ObjectHeader h = expect_object(r, &ctx, ObjectType::kGaloisKeys, keys_len != nullptr);
  compressed = h.flags & kFlagCompressed;
  const std::uint32_t count = r.u32();
  if (keys_len) *keys_len = h.body_len - 4;  // the u32 just read proves body_len >= 4
  // Every Galois element is odd and below 2N, so at most N keys can be distinct.
  VEIL_CHECK_IO(count <= ctx.n(),
                "Galois key set claims " << count << " keys (at most N = " << ctx.n() << ")");
  return count;
}

std::uint32_t read_galois_element(ByteReader& r, const Context& ctx) {
  const std::uint32_t g = r.u32();
  VEIL_CHECK_IO(g % 2 == 1 && g < 2 * ctx.n() && g != 1, "invalid Galois element " << g);
  return g;
}

// One key's (element, level) from its header, its residues skipped: the checks of loading
// except the residues' ranges.
std::pair<std::uint32_t, int> skip_galois_key(ByteReader& r, const Context& ctx, bool compressed) {
  const std::uint32_t g = read_galois_element(r, ctx);
  const std::uint32_t level = r.u32();
  check_level(ctx, level, "key-switching key");
  const std::uint32_t digits = r.u32();
  VEIL_CHECK_IO(
      static_cast<int>(digits) == ctx.num_digits(static_cast<int>(level)),
      "key-switching key has " << digits << " digits, expected " << ctx.num_digits(static_cast<int>(level)));
  const std::uint64_t need =
      (compressed ? 32 : 0) +
      digits * packed_bytes(ctx, qp_indices(ctx, static_cast<int>(level))) * (compressed ? 1 : 2);
  VEIL_CHECK_IO(r.remaining() >= need,
                "key-switching key truncated: need " << need << " bytes, have " << r.remaining());
  r.view(need);
  return {g, static_cast<int>(level)};
}

}  // namespace

std::vector<std::pair<std::uint32_t, int>> peek_galois_keys(const Context& ctx,
                                                            std::span<const std::uint8_t> data) {
  ByteReader r(data);
  bool compressed = false;
  const std::uint32_t count = read_galois_header(r, ctx, compressed);
  std::vector<std::pair<std::uint32_t, int>> out;
  for (std::uint32_t i = 0; i < count; ++i) out.push_back(skip_galois_key(r, ctx, compressed));
  r.expect_end();
  return out;
}

std::vector<std::span<const std::uint8_t>> galois_key_pieces(const Context& ctx,
                                                             std::span<const std::uint8_t> data,
                                                             std::size_t max_piece_bytes) {
  ByteReader r(data);
  bool compressed = false;
  const std::uint32_t count = read_galois_header(r, ctx, compressed);
  std::vector<std::span<const std::uint8_t>> pieces;
  std::size_t begin = 0, end = data.size() - r.remaining();  // the first piece: header and count
  std::size_t keys = 0;                                      // in the piece being cut
  for (std::uint32_t i = 0; i < count; ++i) {
    skip_galois_key(r, ctx, compressed);
    const std::size_t next = data.size() - r.remaining();
    if (next - begin > max_piece_bytes && keys > 0) {
      pieces.push_back(data.subspan(begin, end - begin));
      begin = end;
      keys = 0;
    }
    end = next;
    ++keys;
  }
  r.expect_end();
  pieces.push_back(data.subspan(begin, end - begin));
  return pieces;
}

std::vector<std::pair<std::uint32_t, int>> GaloisKeyPieceReader::peek(
    std::span<const std::uint8_t> piece) const {
  ByteReader r(piece);
  bool compressed = compressed_;
  std::uint32_t left = count_ - read_;
  std::uint64_t body = body_left_;
  if (!started_) left = read_galois_header(r, *ctx_, compressed, &body);
  VEIL_CHECK_IO(r.remaining() <= body, "Galois key pieces run past the set's announced length");
  std::vector<std::pair<std::uint32_t, int>> out;
  while (r.remaining() > 0) {
    VEIL_CHECK_IO(out.size() < left,
                  "Galois key pieces hold more keys than the set's header announced (" << count_ << ")");
    out.push_back(skip_galois_key(r, *ctx_, compressed));
  }
  return out;
}

void GaloisKeyPieceReader::read(std::span<const std::uint8_t> piece, GaloisKeys& into) {
  ByteReader r(piece);
  if (!started_) {
    count_ = read_galois_header(r, *ctx_, compressed_, &body_left_);
    started_ = true;
  }
  VEIL_CHECK_IO(r.remaining() <= body_left_, "Galois key pieces run past the set's announced length");
  body_left_ -= r.remaining();
  while (r.remaining() > 0) {
    VEIL_CHECK_IO(read_ < count_,
                  "Galois key pieces hold more keys than the set's header announced (" << count_ << ")");
    const std::uint32_t g = read_galois_element(r, *ctx_);
    VEIL_CHECK_IO(!into.has(g), "Galois element " << g << " appears twice");
    into.keys.emplace(g, read_switch_key(r, *ctx_, compressed_));
    ++read_;
  }
}

}  // namespace veil::rlwe
