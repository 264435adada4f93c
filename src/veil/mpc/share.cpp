#include "veil/mpc/share.hpp"

#include <bit>

#include "veil/common/error.hpp"

namespace veil::mpc {

void MaskSource::uniform(const Field& f, std::span<u64> out) {
  check_words(f, out.size(), "uniform masks");
  u64 mask[2] = {0, 0};
  for (int r = 0; r < f.words(); ++r) mask[r] = std::bit_ceil(f.p(r)) - 1;
  const std::size_t k = static_cast<std::size_t>(f.words());
  // Each residue uniform mod its prime, independently: uniform mod P by the CRT.
  for_each_word(f, out.size(), [&](std::size_t i, const math::Modulus& m) {
    const u64 p = m.value(), bits = mask[i & (k - 1)];
    u64 r;
    do {
      r = prng_.next_u64() & bits;
    } while (r >= p);  // accepted with probability p / 2^bits(p) > 1/2
    out[i] = r;
  });
}

std::vector<u64> MaskSource::uniform(const Field& f, std::size_t n) {
  std::vector<u64> out(n);
  uniform(f, out);
  return out;
}

Shared split(const Field& f, std::span<const u64> x, MaskSource& masks) {
  Shared s;
  s.client = masks.uniform(f, x.size());
  s.server.assign(x.begin(), x.end());
  sub_inplace(f, s.server, s.client);
  return s;
}

std::vector<u64> reconstruct(const Field& f, std::span<const u64> a, std::span<const u64> b) {
  std::vector<u64> x(a.begin(), a.end());
  add_inplace(f, x, b);
  return x;
}

}  // namespace veil::mpc
