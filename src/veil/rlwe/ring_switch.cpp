#include "veil/rlwe/ring_switch.hpp"

#include <sodium.h>

#include <cstring>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"
#include "veil/rlwe/keygen.hpp"
#include "veil/rlwe/sampling.hpp"

namespace veil::rlwe {

Parameters ring_switch_parameters(const Parameters& big, const Parameters& small) {
  VEIL_REQUIRE(small.log_n + 1 == big.log_n, "ring switching goes from degree 2^"
                                                 << big.log_n << " to 2^" << big.log_n - 1 << ", not to 2^"
                                                 << small.log_n);
  VEIL_REQUIRE(!small.p.empty(), "the small ring needs special primes (the ring switch is a key switch)");
  const std::uint64_t two_n = 2 * big.n();
  for (const auto* list : {&small.q, &small.p})
    for (std::uint64_t x : *list)
      VEIL_REQUIRE((x - 1) % two_n == 0, "prime " << x << " of the small ring is not 1 mod 2N = " << two_n
                                                  << ", so the key switch cannot run over it at degree 2^"
                                                  << big.log_n << " (take the small ring's primes from the "
                                                  << "large ring's chain)");
  for (std::size_t i = 0; i < small.q.size(); ++i)
    VEIL_REQUIRE(i < big.q.size() && small.q[i] == big.q[i], "the small ring's data primes must be the first "
                                                                 << small.q.size()
                                                                 << " data primes of the large ring's chain");
  Parameters w = small;
  w.log_n = big.log_n;
  w.scheme_id_words = small.scheme_id_words;
  w.scheme_id_words.push_back(0x72696e67737769ULL);  // "ringswi": not the same id as a plain context
  const std::string err = w.validate();
  VEIL_REQUIRE(err.empty(), "ring-switching parameters: " << err);
  return w;
}

std::vector<std::int64_t> secret_coefficients(const Context& ctx, const SecretKey& sk) {
  VEIL_REQUIRE(sk.param_id() == ctx.param_id(), "secret key was made for other parameters");
  const std::size_t n = ctx.n();
  VEIL_REQUIRE(sk.data().size() >= n, "secret key is empty");
  std::vector<u64> limb(sk.data().begin(), sk.data().begin() + static_cast<std::ptrdiff_t>(n));
  ctx.ntt(0).inverse(limb.data());
  const u64 q = ctx.modulus(0).value();
  std::vector<std::int64_t> s(n);
  for (std::size_t j = 0; j < n; ++j)
    s[j] = limb[j] > q / 2 ? -static_cast<std::int64_t>(q - limb[j]) : static_cast<std::int64_t>(limb[j]);
  sodium_memzero(limb.data(), limb.size() * sizeof(u64));
  return s;
}

SecretKey derive_subring_secret(const Context& big, const SecretKey& big_sk, const Context& small) {
  std::vector<std::int64_t> s = secret_coefficients(big, big_sk);
  std::vector<std::int8_t> bytes(s.size());
  for (std::size_t j = 0; j < s.size(); ++j) bytes[j] = static_cast<std::int8_t>(s[j]);
  static constexpr unsigned char kLabel[] = "veil ring switch: subring secret v1";
  Seed seed{};
  crypto_generichash(seed.data(), seed.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), kLabel, sizeof kLabel - 1);
  Prng rng(seed);
  std::vector<std::int64_t> t = sample_ternary(rng, small.n());
  SecretKey out = secret_key_from(small, t);
  sodium_memzero(s.data(), s.size() * sizeof(std::int64_t));
  sodium_memzero(bytes.data(), bytes.size());
  sodium_memzero(t.data(), t.size() * sizeof(std::int64_t));
  sodium_memzero(seed.data(), seed.size());
  return out;
}

KeySwitchKey create_ring_switch_key(const Context& big, const SecretKey& big_sk, const ContextPtr& switching,
                                    const Context& small, const SecretKey& small_sk) {
  VEIL_REQUIRE(switching && switching->n() == big.n() && small.n() * 2 == big.n(),
               "ring switching needs contexts of degrees N (large and switching) and N/2 (small)");
  const std::size_t n = big.n();
  // t(X) = s'(X^2): the small secret in the large ring, over the switching primes.
  std::vector<std::int64_t> s_small = secret_coefficients(small, small_sk);
  std::vector<std::int64_t> t(n, 0);
  for (std::size_t j = 0; j < s_small.size(); ++j) t[2 * j] = s_small[j];
  const SecretKey t_sk = secret_key_from(*switching, t);
  // The source: the large secret over the same primes.
  std::vector<std::int64_t> s_big = secret_coefficients(big, big_sk);
  const int level = switching->max_level();
  const std::vector<std::size_t> idx = qp_indices(*switching, level);
  std::vector<u64> s_ntt(idx.size() * n);
  small_to_ntt(*switching, s_big, idx, s_ntt.data());
  KeySwitchKey key = KeyGenerator(switching, t_sk).create_switch_key(s_ntt.data(), level);
  for (auto* v : {&s_small, &t, &s_big}) sodium_memzero(v->data(), v->size() * sizeof(std::int64_t));
  sodium_memzero(s_ntt.data(), s_ntt.size() * sizeof(u64));
  return key;
}

void ring_switch(const KeySwitcher& switcher, const Context& switching, const Context& small,
                 const KeySwitchKey& key, const u64* c0, const u64* c1, int level, u64* out0, u64* out1) {
  VEIL_REQUIRE(level >= 0 && level <= switching.max_level() && level <= small.max_level(),
               "ring switch at level " << level << ": the small ring holds levels up to " << small.max_level()
                                       << " (drop the ciphertext to it first)");
  VEIL_REQUIRE(switching.n() == 2 * small.n(), "switching context and small ring differ in degree");
  std::vector<SwitchJob> jobs(1);
  jobs[0].key = &key;
  switcher.key_switch(c1, level, jobs);
  const std::size_t n = switching.n(), half = small.n();
  // Per limb: (c0 + ks0, ks1) under t = s'(X^2), back to coefficients, even ones kept,
  // into the small ring's NTT form.
  parallel_for(2 * static_cast<std::size_t>(level + 1), [&](std::size_t job) {
    const std::size_t poly = job % 2, i = job / 2;
    const auto& q = switching.modulus(i);
    std::vector<u64> buf(n);
    const u64* k = (poly == 0 ? jobs[0].acc0 : jobs[0].acc1).data() + i * n;
    if (poly == 0) {
      const u64* c = c0 + i * n;
      math::add_vec(q, c, k, buf.data(), n);
    } else {
      std::memcpy(buf.data(), k, n * sizeof(u64));
    }
    switching.ntt(i).inverse(buf.data());
    u64* out = (poly == 0 ? out0 : out1) + i * half;
    for (std::size_t j = 0; j < half; ++j) out[j] = buf[2 * j];
    small.ntt(i).forward(out);
  });
}

}  // namespace veil::rlwe
