// Deterministic mutations of valid encodings for the loaders' fuzz tests: flipped bytes,
// truncation, appended and inserted bytes, and length fields made oversized (a 4- or
// 8-byte little-endian window overwritten with a huge or off-by-one count), the shapes
// of corruption a hostile peer or a damaged file produces.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>

#include "veil/common/bytes.hpp"

namespace veil::test {

inline Bytes mutate(const Bytes& valid, std::mt19937_64& g) {
  Bytes b = valid;
  auto pos = [&](std::size_t n) { return n == 0 ? std::size_t{0} : static_cast<std::size_t>(g() % n); };
  switch (g() % 6) {
    case 0:  // flip 1-4 bytes
      if (b.empty()) break;
      for (int k = 0; k < 1 + static_cast<int>(g() % 4); ++k)
        b[pos(b.size())] ^= static_cast<std::uint8_t>(1 + g() % 255);
      break;
    case 1:  // truncate
      b.resize(pos(b.size()));
      break;
    case 2:  // append 1-16 bytes
      for (int k = 0; k < 1 + static_cast<int>(g() % 16); ++k) b.push_back(static_cast<std::uint8_t>(g()));
      break;
    case 3: {  // insert or delete a few bytes in the middle
      const std::size_t at = pos(b.size() + 1);
      const std::size_t n = 1 + g() % 8;
      if (g() % 2 == 0) {
        for (std::size_t k = 0; k < n; ++k)
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(g()));
      } else {
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
                b.begin() + static_cast<std::ptrdiff_t>(std::min(b.size(), at + n)));
      }
      break;
    }
    default: {  // an oversized (or off-by-a-little) count in a 4- or 8-byte window
      const std::size_t width = g() % 3 == 0 ? 8 : 4;
      if (b.size() < width) break;
      const std::uint64_t choices[] = {0xffffffffffffffffULL,
                                       0xffffffffULL,
                                       0x7fffffffULL,
                                       0x80000000ULL,
                                       std::uint64_t{1} << 24,
                                       std::uint64_t{1} << 31,
                                       b.size(),
                                       b.size() + 1,
                                       static_cast<std::uint64_t>(g() % 4096)};
      const std::uint64_t v = choices[g() % (sizeof choices / sizeof choices[0])];
      const std::size_t at = pos(b.size() - width + 1);
      std::memcpy(b.data() + at, &v, width);  // little-endian, as ByteWriter writes
      break;
    }
  }
  return b;
}

}  // namespace veil::test
