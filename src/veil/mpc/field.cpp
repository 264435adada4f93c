#include "veil/mpc/field.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::mpc {

Field::Field(u64 p, int frac_bits) : mod_(p), frac_bits_(frac_bits) {
  VEIL_REQUIRE(p > 2 && p < (u64{1} << 61), "share field: p must be a prime below 2^61, got " << p);
  VEIL_REQUIRE(frac_bits >= 0 && frac_bits <= 30,
               "share field: fractional bits must be in 0..30, got " << frac_bits);
}

u64 Field::encode(double x, int scale_bits) const {
  VEIL_REQUIRE(std::isfinite(x), "fixed-point encoding: value " << x << " is not finite");
  const double scaled = std::ldexp(x, scale_bits);
  const double limit = static_cast<double>(p() / 2);
  VEIL_REQUIRE(std::fabs(scaled) < limit, "fixed-point encoding: value "
                                              << x << " at scale 2^" << scale_bits
                                              << " does not fit the share field (|x| must be below "
                                              << std::ldexp(limit, -scale_bits) << ")");
  return mod_.from_signed(static_cast<std::int64_t>(std::llround(scaled)));
}

std::vector<u64> Field::encode(std::span<const double> x, int scale_bits) const {
  std::vector<u64> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = encode(x[i], scale_bits);
  return out;
}

double Field::decode(u64 v, int scale_bits) const {
  return std::ldexp(static_cast<double>(mod_.centered(v)), -scale_bits);
}

std::vector<double> Field::decode(std::span<const u64> v, int scale_bits) const {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = decode(v[i], scale_bits);
  return out;
}

void add_inplace(const Field& f, std::span<u64> a, std::span<const u64> b) {
  VEIL_REQUIRE(a.size() == b.size(), "share add: sizes differ (" << a.size() << " vs " << b.size() << ")");
  const auto& m = f.mod();
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = m.add(a[i], b[i]);
}

void sub_inplace(const Field& f, std::span<u64> a, std::span<const u64> b) {
  VEIL_REQUIRE(a.size() == b.size(), "share sub: sizes differ (" << a.size() << " vs " << b.size() << ")");
  const auto& m = f.mod();
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = m.sub(a[i], b[i]);
}

void add_public_inplace(const Field& f, Role role, std::span<u64> a, std::span<const u64> c) {
  VEIL_REQUIRE(a.size() == c.size(), "share add: sizes differ (" << a.size() << " vs " << c.size() << ")");
  if (role != Role::kServer) return;
  add_inplace(f, a, c);
}

void mul_public_inplace(const Field& f, std::span<u64> a, std::int64_t k) {
  const auto& m = f.mod();
  const u64 kk = m.from_signed(k);
  const u64 ks = m.shoup(kk);
  for (auto& v : a) v = m.mul_shoup(v, kk, ks);
}

}  // namespace veil::mpc
