#include "veil/mpc/field.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::mpc {

namespace {

using u128 = unsigned __int128;

std::vector<math::Modulus> moduli(const std::vector<u64>& primes) {
  VEIL_REQUIRE(primes.size() == 1 || primes.size() == 2,
               "share ring: one or two primes, got " << primes.size());
  std::vector<math::Modulus> m;
  for (u64 p : primes) {
    VEIL_REQUIRE(p > 2 && p < (u64{1} << 61), "share field: p must be a prime below 2^61, got " << p);
    m.emplace_back(p);
  }
  VEIL_REQUIRE(primes.size() == 1 || primes[0] != primes[1],
               "share ring: the two primes must differ, both are " << primes[0]);
  return m;
}

}  // namespace

Field::Field(u64 p, int frac_bits) : Field(std::vector<u64>{p}, frac_bits) {}

Field::Field(const std::vector<u64>& primes, int frac_bits) : mods_(moduli(primes)), frac_bits_(frac_bits) {
  VEIL_REQUIRE(frac_bits >= 0 && frac_bits <= 30,
               "share field: fractional bits must be in 0..30, got " << frac_bits);
  if (mods_.size() == 2) inv_p0_mod_p1_ = mods_[1].inv(mods_[1].reduce(mods_[0].value()));
}

std::vector<u64> Field::primes() const {
  std::vector<u64> p;
  for (const auto& m : mods_) p.push_back(m.value());
  return p;
}

double Field::log2_modulus() const {
  double s = 0;
  for (const auto& m : mods_) s += std::log2(static_cast<double>(m.value()));
  return s;
}

u128 Field::combine(const u64* v) const {
  if (mods_.size() == 1) return v[0];
  // Garner: x = a_0 + p_0 ((a_1 - a_0) p_0^-1 mod p_1), in [0, p_0 p_1).
  const math::Modulus& m1 = mods_[1];
  const u64 d = m1.mul(m1.sub(v[1], m1.reduce(v[0])), inv_p0_mod_p1_);
  return static_cast<u128>(v[0]) + static_cast<u128>(mods_[0].value()) * d;
}

i128 Field::centered(const u64* v) const {
  if (mods_.size() == 1) return mods_[0].centered(v[0]);
  const u128 P = static_cast<u128>(mods_[0].value()) * mods_[1].value();
  const u128 x = combine(v);
  return x > P / 2 ? -static_cast<i128>(P - x) : static_cast<i128>(x);
}

void Field::from_signed(i128 x, u64* out) const {
  const bool neg = x < 0;
  const u128 mag = neg ? static_cast<u128>(-x) : static_cast<u128>(x);
  for (std::size_t r = 0; r < mods_.size(); ++r) {
    const u64 v = mods_[r].reduce128(mag);
    out[r] = neg ? mods_[r].neg(v) : v;
  }
}

namespace {

std::int64_t scaled_integer(const Field& f, double x, int scale_bits) {
  VEIL_REQUIRE(std::isfinite(x), "fixed-point encoding: value " << x << " is not finite");
  const double scaled = std::ldexp(x, scale_bits);
  const double limit = std::min(std::exp2(f.log2_modulus() - 1), std::ldexp(1.0, 62));
  VEIL_REQUIRE(std::fabs(scaled) < limit, "fixed-point encoding: value "
                                              << x << " at scale 2^" << scale_bits
                                              << " does not fit the share field (|x| must be below "
                                              << std::ldexp(limit, -scale_bits) << ")");
  return static_cast<std::int64_t>(std::llround(scaled));
}

}  // namespace

u64 Field::encode(double x, int scale_bits) const {
  VEIL_REQUIRE(words() == 1, "scalar fixed-point encoding needs a one-prime field; use the vector form");
  return mods_[0].from_signed(scaled_integer(*this, x, scale_bits));
}

std::vector<u64> Field::encode(std::span<const double> x, int scale_bits) const {
  const std::size_t k = mods_.size();
  std::vector<u64> out(x.size() * k);
  for (std::size_t i = 0; i < x.size(); ++i)
    from_signed(scaled_integer(*this, x[i], scale_bits), &out[i * k]);
  return out;
}

double Field::decode(u64 v, int scale_bits) const {
  return std::ldexp(static_cast<double>(mods_[0].centered(v)), -scale_bits);
}

std::vector<double> Field::decode(std::span<const u64> v, int scale_bits) const {
  check_words(*this, v.size(), "decode");
  const std::size_t k = mods_.size();
  std::vector<double> out(v.size() / k);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = std::ldexp(static_cast<double>(centered(&v[i * k])), -scale_bits);
  return out;
}

void check_words(const Field& f, std::size_t size, const char* what) {
  VEIL_REQUIRE(size % static_cast<std::size_t>(f.words()) == 0,
               what << ": " << size << " words are not whole elements of " << f.words() << " residues");
}

void add_inplace(const Field& f, std::span<u64> a, std::span<const u64> b) {
  VEIL_REQUIRE(a.size() == b.size(), "share add: sizes differ (" << a.size() << " vs " << b.size() << ")");
  check_words(f, a.size(), "share add");
  for_each_word(f, a.size(), [&](std::size_t i, const math::Modulus& m) { a[i] = m.add(a[i], b[i]); });
}

void sub_inplace(const Field& f, std::span<u64> a, std::span<const u64> b) {
  VEIL_REQUIRE(a.size() == b.size(), "share sub: sizes differ (" << a.size() << " vs " << b.size() << ")");
  check_words(f, a.size(), "share sub");
  for_each_word(f, a.size(), [&](std::size_t i, const math::Modulus& m) { a[i] = m.sub(a[i], b[i]); });
}

void add_public_inplace(const Field& f, Role role, std::span<u64> a, std::span<const u64> c) {
  VEIL_REQUIRE(a.size() == c.size(), "share add: sizes differ (" << a.size() << " vs " << c.size() << ")");
  if (role != Role::kServer) return;
  add_inplace(f, a, c);
}

void mul_public_inplace(const Field& f, std::span<u64> a, std::int64_t k) {
  check_words(f, a.size(), "share scaling");
  u64 kk[2] = {0, 0}, ks[2] = {0, 0};
  for (int r = 0; r < f.words(); ++r) {
    kk[r] = f.mod(r).from_signed(k);
    ks[r] = f.mod(r).shoup(kk[r]);
  }
  const std::size_t w = static_cast<std::size_t>(f.words());
  for_each_word(f, a.size(), [&](std::size_t i, const math::Modulus& m) {
    a[i] = m.mul_shoup(a[i], kk[i & (w - 1)], ks[i & (w - 1)]);
  });
}

bool in_field(const Field& f, std::span<const u64> a) {
  bool ok = a.size() % static_cast<std::size_t>(f.words()) == 0;
  for_each_word(f, a.size(), [&](std::size_t i, const math::Modulus& m) { ok = ok && a[i] < m.value(); });
  return ok;
}

}  // namespace veil::mpc
