#include "veil/math/primes.hpp"

#include <algorithm>
#include <map>

#include "veil/common/error.hpp"
#include "veil/math/modarith.hpp"

namespace veil::math {

bool is_prime(std::uint64_t n) {
  if (n < 2) return false;
  static const std::uint64_t small[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  for (std::uint64_t p : small) {
    if (n % p == 0) return n == p;
  }
  std::uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  auto mulmod = [n](std::uint64_t a, std::uint64_t b) {
    return static_cast<std::uint64_t>(static_cast<u128>(a) * b % n);
  };
  for (std::uint64_t a : small) {
    std::uint64_t x = 1, base = a, e = d;
    while (e) {
      if (e & 1) x = mulmod(x, base);
      base = mulmod(base, base);
      e >>= 1;
    }
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s; ++r) {
      x = mulmod(x, x);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

std::vector<std::uint64_t> generate_ntt_primes(int bits, std::size_t count, std::uint64_t two_n,
                                               const std::vector<std::uint64_t>& exclude) {
  VEIL_REQUIRE(bits >= 2 && bits <= 61, "prime size must be 2..61 bits, got " << bits);
  VEIL_REQUIRE(two_n >= 2 && (two_n & (two_n - 1)) == 0, "2N must be a power of two");
  std::vector<std::uint64_t> out;
  const std::uint64_t upper = std::uint64_t{1} << bits;
  const std::uint64_t lower = std::uint64_t{1} << (bits - 1);
  VEIL_REQUIRE(two_n < upper,
               "no " << bits << "-bit prime can be 1 mod " << two_n << " (2N >= 2^" << bits << ")");
  // Largest candidate below 2^bits that is 1 mod 2N.
  std::uint64_t q = upper - two_n + 1;
  while (out.size() < count) {
    VEIL_REQUIRE(q > lower && q >= two_n, "not enough " << bits << "-bit primes congruent to 1 mod " << two_n
                                                        << " (wanted " << count << ")");
    if (is_prime(q) && std::find(exclude.begin(), exclude.end(), q) == exclude.end()) {
      out.push_back(q);
    }
    q -= two_n;
  }
  return out;
}

std::vector<std::uint64_t> generate_ntt_primes(const std::vector<int>& bit_sizes, std::uint64_t two_n,
                                               const std::vector<std::uint64_t>& exclude) {
  std::map<int, std::size_t> count;
  for (int b : bit_sizes) ++count[b];
  std::map<int, std::vector<std::uint64_t>> pool;
  for (auto [b, c] : count) pool[b] = generate_ntt_primes(b, c, two_n, exclude);
  std::vector<std::uint64_t> out;
  std::map<int, std::size_t> used;
  for (int b : bit_sizes) out.push_back(pool[b][used[b]++]);
  return out;
}

std::uint64_t minimal_primitive_root(std::uint64_t two_n, std::uint64_t q) {
  VEIL_REQUIRE((q - 1) % two_n == 0, q << " is not 1 mod " << two_n);
  Modulus m(q);
  const std::uint64_t cofactor = (q - 1) / two_n;
  std::uint64_t root = 0;
  // A generator candidate g gives g^cofactor, which is a primitive 2N-th root iff its
  // N-th power is -1 (2N is a power of two).
  for (std::uint64_t g = 2; g < q && root == 0; ++g) {
    std::uint64_t r = m.pow(g, cofactor);
    if (m.pow(r, two_n / 2) == q - 1) root = r;
  }
  VEIL_REQUIRE(root != 0, "no primitive root found modulo " << q);
  // The smallest primitive root: walk the odd powers root^k, k odd, which are exactly the
  // primitive 2N-th roots.
  std::uint64_t best = root, sq = m.mul(root, root), cur = root;
  for (std::uint64_t k = 1; k < two_n; k += 2) {
    best = std::min(best, cur);
    cur = m.mul(cur, sq);
  }
  return best;
}

}  // namespace veil::math
