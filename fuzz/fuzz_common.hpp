// What the fuzz target and its seed generator share: a small CKKS context (N = 2^10,
// insecure on purpose: only the parsers are exercised) whose objects ride in the payloads.
#pragma once

#include "veil/ckks/context.hpp"
#include "veil/ckks/params.hpp"

namespace veil::fuzz {

inline const ckks::ContextPtr& context() {
  static const ckks::ContextPtr ctx =
      ckks::CkksContext::create(ckks::CkksParameters::create(10, {30, 25, 25}, {30}, 25, 3, /*allow_insecure=*/true));
  return ctx;
}

// Frames above this are refused by the parser, as a server with a small limit would.
inline constexpr std::uint64_t kMaxPayload = std::uint64_t{1} << 22;

}  // namespace veil::fuzz
