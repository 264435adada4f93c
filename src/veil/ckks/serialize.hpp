// Binary serialisation of the CKKS objects: parameters (with the scale), plaintexts and
// ciphertexts (with scale and slots). The framing, the keys and the format description
// are rlwe's (rlwe/serialize.hpp); the byte layout is unchanged from format version 1.
#pragma once

#include <cstdint>
#include <span>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"
#include "veil/ckks/params.hpp"
#include "veil/common/bytes.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::ckks {

Bytes save_parameters(const CkksParameters& p);
// allow_insecure is decided by the loader, never by the file.
CkksParameters load_parameters(std::span<const std::uint8_t> data, bool allow_insecure = false);

Bytes save_plaintext(const CkksContext& ctx, const Plaintext& pt);
Plaintext load_plaintext(const CkksContext& ctx, std::span<const std::uint8_t> data);

// Compressed only when the ciphertext still carries its seed (fresh symmetric encryption).
Bytes save_ciphertext(const CkksContext& ctx, const Ciphertext& ct, bool compress = true);
Ciphertext load_ciphertext(const CkksContext& ctx, std::span<const std::uint8_t> data);

}  // namespace veil::ckks
