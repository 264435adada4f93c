// Binary serialisation of the BFV objects through the rlwe framing (rlwe/serialize.hpp:
// header with magic, version, type and parameter id; every size checked against what the
// context implies before anything is allocated; every residue checked below its prime).
//
// Bodies:
//   parameters:  log_n u32 | flood_bits u32 | response_level u32 | t u64 | max_l1_norm f64 |
//                nq u32 | q_i u64...
//   ciphertext:  level u32 | c0 packed | (seed, when compressed) or c1 packed
//   plaintext:   N coefficients packed at t's width
//   response:    level u32 | count u32 | c0 at the indices, packed per limb | c1 packed
// A response does not carry its indices: the receiver passes those it expects (from the
// layout), and a count that differs is refused.
#pragma once

#include <cstdint>
#include <span>

#include "veil/bfv/context.hpp"
#include "veil/bfv/plaintext.hpp"
#include "veil/bfv/response.hpp"
#include "veil/common/bytes.hpp"

namespace veil::bfv {

Bytes save_parameters(const BfvParameters& p);
// allow_insecure is decided by the loader, never by the file.
BfvParameters load_parameters(std::span<const std::uint8_t> data, bool allow_insecure = false);

// Seed-compressed when the ciphertext still carries its seed (fresh secret-key encryption).
Bytes save_ciphertext(const BfvContext& ctx, const Ciphertext& ct, bool compress = true);
Ciphertext load_ciphertext(const BfvContext& ctx, std::span<const std::uint8_t> data);

Bytes save_plaintext(const BfvContext& ctx, const Plaintext& p);
Plaintext load_plaintext(const BfvContext& ctx, std::span<const std::uint8_t> data);

Bytes save_response(const BfvContext& ctx, const Response& r);
Response load_response(const BfvContext& ctx, std::span<const std::uint8_t> data,
                       std::span<const std::uint32_t> indices);

}  // namespace veil::bfv
