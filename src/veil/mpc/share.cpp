#include "veil/mpc/share.hpp"

#include <bit>

#include "veil/common/error.hpp"

namespace veil::mpc {

void MaskSource::uniform(const Field& f, std::span<u64> out) {
  const u64 p = f.p();
  const u64 mask = p == 0 ? ~u64{0} : (std::bit_ceil(p) - 1);
  for (auto& v : out) {
    u64 r;
    do {
      r = prng_.next_u64() & mask;
    } while (r >= p);  // accepted with probability p / 2^bits(p) > 1/2
    v = r;
  }
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
