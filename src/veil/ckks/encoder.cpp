#include "veil/ckks/encoder.hpp"

#include <algorithm>
#include <cmath>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"

namespace veil::ckks {

namespace {
void bit_reverse_permute(std::vector<Complex>& v) {
  const std::size_t n = v.size();
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(v[i], v[j]);
  }
}

}  // namespace

CkksEncoder::CkksEncoder(ContextPtr ctx) : ctx_(std::move(ctx)) {
  VEIL_REQUIRE(ctx_, "null context");
  const std::size_t m = 2 * ctx_->n();
  roots_.resize(m + 1);
  for (std::size_t k = 0; k <= m; ++k) {
    const double angle = 2.0 * M_PI * static_cast<double>(k) / static_cast<double>(m);
    roots_[k] = Complex(std::cos(angle), std::sin(angle));
  }
  rot_group_.resize(ctx_->n() / 2);
  std::size_t g = 1;
  for (auto& r : rot_group_) {
    r = g;
    g = (g * 5) % m;
  }
  const std::size_t max_slots = ctx_->n() / 2;
  fft_twiddles_.resize(max_slots);
  ifft_twiddles_.resize(max_slots);
  for (std::size_t lenh = 1; lenh < max_slots; lenh <<= 1) {
    const std::size_t lenq = lenh << 3;
    for (std::size_t j = 0; j < lenh; ++j) {
      fft_twiddles_[lenh - 1 + j] = roots_[(rot_group_[j] % lenq) * (m / lenq)];
      ifft_twiddles_[lenh - 1 + j] = roots_[(lenq - (rot_group_[j] % lenq)) * (m / lenq)];
    }
  }
}

std::size_t CkksEncoder::resolve_slots(std::size_t slots, std::size_t count) const {
  if (slots == 0) slots = ctx_->max_slots();
  VEIL_REQUIRE(slots >= 1 && slots <= ctx_->max_slots() && (slots & (slots - 1)) == 0,
               "slot count must be a power of two in 1.." << ctx_->max_slots() << ", got " << slots);
  VEIL_REQUIRE(count <= slots, count << " values do not fit in " << slots << " slots");
  return slots;
}

void CkksEncoder::special_fft(std::vector<Complex>& v) const {
  const std::size_t size = v.size();
  bit_reverse_permute(v);
  for (std::size_t len = 2; len <= size; len <<= 1) {
    const std::size_t lenh = len >> 1;
    const Complex* tw = fft_twiddles_.data() + lenh - 1;
    for (std::size_t i = 0; i < size; i += len) {
      Complex* a = v.data() + i;
      Complex* b = a + lenh;
      for (std::size_t j = 0; j < lenh; ++j) {
        // Written out: std::complex's operator* carries NaN/infinity handling.
        const double wr = b[j].real() * tw[j].real() - b[j].imag() * tw[j].imag();
        const double wi = b[j].real() * tw[j].imag() + b[j].imag() * tw[j].real();
        const Complex u = a[j];
        a[j] = Complex(u.real() + wr, u.imag() + wi);
        b[j] = Complex(u.real() - wr, u.imag() - wi);
      }
    }
  }
}

void CkksEncoder::special_ifft(std::vector<Complex>& v) const {
  const std::size_t size = v.size();
  for (std::size_t len = size; len >= 2; len >>= 1) {
    const std::size_t lenh = len >> 1;
    const Complex* tw = ifft_twiddles_.data() + lenh - 1;
    for (std::size_t i = 0; i < size; i += len) {
      Complex* a = v.data() + i;
      Complex* b = a + lenh;
      for (std::size_t j = 0; j < lenh; ++j) {
        const double dr = a[j].real() - b[j].real(), di = a[j].imag() - b[j].imag();
        a[j] = Complex(a[j].real() + b[j].real(), a[j].imag() + b[j].imag());
        b[j] = Complex(dr * tw[j].real() - di * tw[j].imag(), dr * tw[j].imag() + di * tw[j].real());
      }
    }
  }
  bit_reverse_permute(v);
  const double inv = 1.0 / static_cast<double>(size);
  for (auto& x : v) x *= inv;
}

bool CkksEncoder::round_to_int64(std::span<const double> coeffs, std::vector<std::int64_t>& out) {
  out.resize(coeffs.size());
  bool small = true;
  for (std::size_t j = 0; j < coeffs.size(); ++j) {
    const double r = std::nearbyint(coeffs[j]);
    VEIL_REQUIRE(std::isfinite(r), "value to encode is not finite (NaN or overflow at this scale)");
    small = small && std::fabs(r) < 0x1p62;
    out[j] = small ? static_cast<std::int64_t>(r) : 0;
  }
  return small;
}

void CkksEncoder::coeffs_to_plaintext(std::span<const double> coeffs, Plaintext& pt) const {
  std::vector<std::size_t> primes(pt.num_limbs());
  for (std::size_t i = 0; i < primes.size(); ++i) primes[i] = i;
  coeffs_to_limbs(coeffs, primes, pt.limb(0));
}

void CkksEncoder::coeffs_to_limbs(std::span<const double> coeffs, const std::vector<std::size_t>& primes,
                                  u64* out) const {
  const std::size_t n = ctx_->n();
  VEIL_REQUIRE(coeffs.size() == n, "need " << n << " coefficients");
  // The common case converts to integers once, not once per limb.
  std::vector<std::int64_t> ints;
  const bool small = round_to_int64(coeffs, ints);
  std::uint64_t largest = 0;
  if (small)
    for (std::int64_t v : ints) largest = std::max(largest, static_cast<std::uint64_t>(v < 0 ? -v : v));
  parallel_for(primes.size(), [&](std::size_t i) {
    const auto& q = ctx_->modulus(primes[i]);
    u64* o = out + i * n;
    if (small && largest < q.value()) {
      // |v| < q: one conditional add, which vectorises (Barrett per coefficient cost as
      // much as the NTT that follows when diagonals are encoded on the fly).
      const auto qs = static_cast<std::int64_t>(q.value());
      for (std::size_t j = 0; j < n; ++j) o[j] = static_cast<u64>(ints[j] + (qs & (ints[j] >> 63)));
    } else if (small) {
      for (std::size_t j = 0; j < n; ++j) o[j] = q.from_signed(ints[j]);
    } else {
      for (std::size_t j = 0; j < n; ++j) o[j] = q.from_double(coeffs[j]);
    }
    ctx_->ntt(primes[i]).forward(o);
  });
}

PolyData CkksEncoder::encode_extended(std::span<const double> values, double scale, int level,
                                      std::size_t slots) const {
  const std::vector<Complex> c(values.begin(), values.end());
  return encode_extended(std::span<const Complex>(c), scale, level, slots);
}

PolyData CkksEncoder::encode_extended(std::span<const Complex> values, double scale, int level,
                                      std::size_t slots) const {
  const auto coeffs = scaled_coefficients(values, scale, level, slots);
  const auto l1 = static_cast<std::size_t>(level) + 1;
  std::vector<std::size_t> primes(l1 + ctx_->num_p());
  for (std::size_t i = 0; i < primes.size(); ++i) primes[i] = i < l1 ? i : ctx_->p_index() + (i - l1);
  PolyData out(primes.size() * ctx_->n());
  coeffs_to_limbs(coeffs, primes, out.data());
  return out;
}

std::vector<double> CkksEncoder::scaled_coefficients(std::span<const double> values, double scale, int level,
                                                     std::size_t& slots) const {
  std::vector<Complex> c(values.begin(), values.end());
  return scaled_coefficients(c, scale, level, slots);
}

std::vector<double> CkksEncoder::scaled_coefficients(std::span<const Complex> values, double scale, int level,
                                                     std::size_t& slots) const {
  slots = resolve_slots(slots, values.size());
  VEIL_REQUIRE(level >= 0 && level <= ctx_->max_level(),
               "level " << level << " outside 0.." << ctx_->max_level());
  VEIL_REQUIRE(scale >= 1.0 && std::isfinite(scale), "scale must be >= 1, got " << scale);
  VEIL_REQUIRE(std::log2(scale) < ctx_->q_base(level).log2_product(),
               "scale 2^" << std::log2(scale) << " does not fit in the modulus at level " << level);
  std::vector<Complex> w(slots, Complex(0, 0));
  for (std::size_t i = 0; i < values.size(); ++i) {
    VEIL_REQUIRE(std::isfinite(values[i].real()) && std::isfinite(values[i].imag()),
                 "value " << i << " to encode is not finite");
    w[i] = values[i];
  }
  special_ifft(w);
  const std::size_t n = ctx_->n(), gap = n / (2 * slots);
  std::vector<double> coeffs(n, 0.0);
  for (std::size_t k = 0; k < slots; ++k) {
    coeffs[k * gap] = w[k].real() * scale;
    coeffs[n / 2 + k * gap] = w[k].imag() * scale;
  }
  return coeffs;
}

Plaintext CkksEncoder::encode(std::span<const Complex> values, double scale, int level,
                              std::size_t slots) const {
  const auto coeffs = scaled_coefficients(values, scale, level, slots);
  Plaintext pt(*ctx_, level, scale, slots);
  coeffs_to_plaintext(coeffs, pt);
  return pt;
}

Plaintext CkksEncoder::encode(std::span<const double> values, double scale, int level,
                              std::size_t slots) const {
  std::vector<Complex> c(values.begin(), values.end());
  return encode(c, scale, level, slots);
}

Plaintext CkksEncoder::encode_constant(Complex value, double scale, int level, std::size_t slots) const {
  slots = resolve_slots(slots, 1);
  VEIL_REQUIRE(level >= 0 && level <= ctx_->max_level(),
               "level " << level << " outside 0.." << ctx_->max_level());
  const std::size_t n = ctx_->n();
  std::vector<double> coeffs(n, 0.0);
  coeffs[0] = value.real() * scale;
  coeffs[n / 2] = value.imag() * scale;
  Plaintext pt(*ctx_, level, scale, slots);
  coeffs_to_plaintext(coeffs, pt);
  return pt;
}

std::vector<Complex> CkksEncoder::decode(const Plaintext& pt) const {
  const std::size_t n = ctx_->n(), slots = pt.slots();
  rlwe::check_param_id(*ctx_, pt.param_id(), "plaintext");
  VEIL_REQUIRE(pt.n() == n && pt.level() >= 0 && pt.level() <= ctx_->max_level(),
               "plaintext does not match the context");
  VEIL_REQUIRE(slots >= 1 && slots <= n / 2, "plaintext has an invalid slot count " << slots);
  Plaintext coef = pt;
  parallel_for(coef.num_limbs(), [&](std::size_t i) { ctx_->ntt(i).inverse(coef.limb(i)); });
  const std::size_t gap = n / (2 * slots);
  std::vector<const u64*> lo(coef.num_limbs()), hi(coef.num_limbs());
  for (std::size_t i = 0; i < coef.num_limbs(); ++i) {
    lo[i] = coef.limb(i);
    hi[i] = coef.limb(i) + n / 2;
  }
  std::vector<double> re(slots), im(slots);
  const auto& base = ctx_->q_base(pt.level());
  math::crt_to_double(base, lo.data(), slots, gap, 1.0 / pt.scale(), re.data());
  math::crt_to_double(base, hi.data(), slots, gap, 1.0 / pt.scale(), im.data());
  std::vector<Complex> w(slots);
  for (std::size_t k = 0; k < slots; ++k) w[k] = Complex(re[k], im[k]);
  special_fft(w);
  return w;
}

std::vector<double> CkksEncoder::decode_real(const Plaintext& pt) const {
  auto c = decode(pt);
  std::vector<double> r(c.size());
  for (std::size_t i = 0; i < c.size(); ++i) r[i] = c[i].real();
  return r;
}

}  // namespace veil::ckks
