#include "veil/math/ntt.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#include "veil/common/error.hpp"
#include "veil/math/cpu.hpp"
#include "veil/math/ifma_avx512.hpp"
#include "veil/math/primes.hpp"

namespace veil::math {

std::size_t bit_reverse(std::size_t x, int bits) {
  std::size_t r = 0;
  for (int i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

std::shared_ptr<const NttTables> NttTables::shared(int log_n, const Modulus& q) {
  static std::mutex mu;
  static std::map<std::pair<int, u64>, std::weak_ptr<const NttTables>> tables;
  const std::pair<int, u64> key{log_n, q.value()};
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto t = tables[key].lock()) return t;
  }
  // Built outside the lock: a context builds its primes' tables in parallel.
  auto made = std::make_shared<const NttTables>(log_n, q);
  std::lock_guard<std::mutex> lock(mu);
  std::weak_ptr<const NttTables>& slot = tables[key];
  if (auto t = slot.lock()) return t;  // another thread built it meanwhile
  slot = made;
  return made;
}

NttTables::NttTables(int log_n, const Modulus& q) : log_n_(log_n), n_(std::size_t{1} << log_n), q_(q) {
  VEIL_REQUIRE(log_n >= 1 && log_n <= 17, "NTT size 2^" << log_n << " out of range");
  VEIL_REQUIRE(q.bits() <= 61, "NTT modulus must be below 2^61 (lazy butterflies keep values < 4q)");
  psi_ = minimal_primitive_root(2 * n_, q.value());
  const u64 psi_inv = q_.inv(psi_);
  psi_rev_.resize(n_);
  psi_inv_rev_.resize(n_);
  psi_rev_shoup_.resize(n_);
  psi_inv_rev_shoup_.resize(n_);
  u64 p = 1, pi = 1;
  for (std::size_t k = 0; k < n_; ++k) {
    const std::size_t r = bit_reverse(k, log_n);
    psi_rev_[r] = p;
    psi_inv_rev_[r] = pi;
    p = q_.mul(p, psi_);
    pi = q_.mul(pi, psi_inv);
  }
  for (std::size_t k = 0; k < n_; ++k) {
    psi_rev_shoup_[k] = q_.shoup(psi_rev_[k]);
    psi_inv_rev_shoup_[k] = q_.shoup(psi_inv_rev_[k]);
  }
  n_inv_ = q_.inv(n_ % q_.value());
  n_inv_shoup_ = q_.shoup(n_inv_);
  if (q_.bits() <= 50 && cpu_features().avx512_ifma) {
    psi_rev_shoup52_.resize(n_);
    psi_inv_rev_shoup52_.resize(n_);
    for (std::size_t k = 0; k < n_; ++k) {
      psi_rev_shoup52_[k] = ifma::shoup52(psi_rev_[k], q_.value());
      psi_inv_rev_shoup52_[k] = ifma::shoup52(psi_inv_rev_[k], q_.value());
    }
    n_inv_shoup52_ = ifma::shoup52(n_inv_, q_.value());
  }
  if (cpu_features().avx2_fma && ntt_avx2_narrow_applicable(*this)) {
    // floor(w 2^32 / q), the quotient Shoup's product needs over 32-bit words.
    const auto shoup32 = [&](u64 w) { return static_cast<std::uint32_t>((w << 32) / q_.value()); };
    for (std::size_t k = 0; k < n_; ++k) {
      psi_rev32_.push_back(static_cast<std::uint32_t>(psi_rev_[k]));
      psi_rev32_shoup_.push_back(shoup32(psi_rev_[k]));
      psi_inv_rev32_.push_back(static_cast<std::uint32_t>(psi_inv_rev_[k]));
      psi_inv_rev32_shoup_.push_back(shoup32(psi_inv_rev_[k]));
    }
    n_inv32_shoup_ = shoup32(n_inv_);
    last_inv32_ = static_cast<std::uint32_t>(q_.mul(psi_inv_rev_[1], n_inv_));
    last_inv32_shoup_ = shoup32(last_inv32_);
  }
  if (ntt_avx2_applicable(*this)) {
    const double qd = static_cast<double>(q_.value());
    for (std::size_t k = 0; k < n_; ++k) {
      psi_rev_d_.push_back(static_cast<double>(psi_rev_[k]));
      psi_rev_q_.push_back(static_cast<double>(psi_rev_[k]) / qd);
      psi_inv_rev_d_.push_back(static_cast<double>(psi_inv_rev_[k]));
      psi_inv_rev_q_.push_back(static_cast<double>(psi_inv_rev_[k]) / qd);
    }
  }
}

SimdLevel NttTables::kernel_level() const {
  const SimdLevel level = simd_level();
  if (level >= SimdLevel::kAvx512 && ntt_avx512_applicable(*this)) return SimdLevel::kAvx512;
  if (level >= SimdLevel::kAvx2 && !psi_rev_d_.empty()) return SimdLevel::kAvx2;
  return SimdLevel::kScalar;
}

bool NttTables::uses_simd() const { return kernel_level() != SimdLevel::kScalar; }

std::size_t NttTables::index_of_exponent(std::size_t e) const {
  return bit_reverse(((e % (2 * n_)) - 1) >> 1, log_n_);
}

void ntt_forward_scalar(const NttTables& tab, u64* a) {
  const std::size_t n = tab.n();
  const u64 q = tab.modulus().value(), two_q = 2 * q;
  const u64* w = tab.psi_rev().data();
  const u64* ws = tab.psi_rev_shoup().data();
  std::size_t t = n;
  for (std::size_t m = 1; m < n; m <<= 1) {
    t >>= 1;
    for (std::size_t i = 0; i < m; ++i) {
      const u64 W = w[m + i], Ws = ws[m + i];
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; ++j) {
        u64 X = x[j];
        X -= (X >= two_q) ? two_q : 0;
        const u64 T = Modulus::mul_shoup_lazy(y[j], W, Ws, q);
        x[j] = X + T;
        y[j] = X - T + two_q;
      }
    }
  }
  for (std::size_t j = 0; j < n; ++j) {
    u64 v = a[j];
    v -= (v >= two_q) ? two_q : 0;
    v -= (v >= q) ? q : 0;
    a[j] = v;
  }
}

void ntt_inverse_scalar(const NttTables& tab, u64* a) {
  const std::size_t n = tab.n();
  const u64 q = tab.modulus().value(), two_q = 2 * q;
  const u64* w = tab.psi_inv_rev().data();
  const u64* ws = tab.psi_inv_rev_shoup().data();
  std::size_t t = 1;
  for (std::size_t m = n; m > 1; m >>= 1) {
    const std::size_t h = m >> 1;
    for (std::size_t i = 0; i < h; ++i) {
      const u64 W = w[h + i], Ws = ws[h + i];
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; ++j) {
        const u64 X = x[j], Y = y[j];
        u64 U = X + Y;
        U -= (U >= two_q) ? two_q : 0;
        x[j] = U;
        y[j] = Modulus::mul_shoup_lazy(X - Y + two_q, W, Ws, q);
      }
    }
    t <<= 1;
  }
  const u64 ni = tab.n_inv(), nis = tab.n_inv_shoup();
  for (std::size_t j = 0; j < n; ++j) {
    u64 v = Modulus::mul_shoup_lazy(a[j], ni, nis, q);
    a[j] = v >= q ? v - q : v;
  }
}

void NttTables::forward(u64* a) const {
  switch (kernel_level()) {
    case SimdLevel::kAvx512:
      return ntt_avx512_narrow_applicable(*this) ? ntt_forward_avx512_narrow(*this, a)
                                                 : ntt_forward_avx512(*this, a);
    case SimdLevel::kAvx2:
      return psi_rev32_.empty() ? ntt_forward_avx2(*this, a) : ntt_forward_avx2_narrow(*this, a);
    case SimdLevel::kScalar:
      return ntt_forward_scalar(*this, a);
  }
}

namespace {

// The kernel on 32-bit lanes that serves these tables at this SIMD level, or none.
using Forward32Kernel = void (*)(const NttTables&, std::uint32_t*);
Forward32Kernel forward32_kernel(const NttTables& t, SimdLevel level, bool have_rev32) {
  if (level == SimdLevel::kAvx512 && ntt_avx512_narrow_applicable(t)) return ntt_forward_avx512_narrow32;
  if (level == SimdLevel::kAvx2 && have_rev32) return ntt_forward_avx2_narrow32;
  return nullptr;
}

}  // namespace

bool NttTables::forward32_native() const {
  return forward32_kernel(*this, kernel_level(), !psi_rev32_.empty()) != nullptr;
}

void NttTables::forward32(std::uint32_t* a) const {
  VEIL_REQUIRE(q_.value() < (u64{1} << 32), "forward32 takes primes below 2^32, not " << q_.value());
  if (const auto kernel = forward32_kernel(*this, kernel_level(), !psi_rev32_.empty()))
    return kernel(*this, a);
  // No kernel on 32-bit lanes for this prime here: widen, transform, narrow.
  std::vector<u64> wide(a, a + n_);
  forward(wide.data());
  std::copy(wide.begin(), wide.end(), a);
}

void NttTables::inverse(u64* a) const {
  switch (kernel_level()) {
    case SimdLevel::kAvx512:
      return ntt_avx512_narrow_applicable(*this) ? ntt_inverse_avx512_narrow(*this, a)
                                                 : ntt_inverse_avx512(*this, a);
    case SimdLevel::kAvx2:
      return psi_rev32_.empty() ? ntt_inverse_avx2(*this, a) : ntt_inverse_avx2_narrow(*this, a);
    case SimdLevel::kScalar:
      return ntt_inverse_scalar(*this, a);
  }
}

}  // namespace veil::math
