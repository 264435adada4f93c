// IDX files (the MNIST / Fashion-MNIST container, LeCun et al.): magic 00 00 tt nd, then
// nd big-endian u32 dimensions, then the elements in row-major order. Only unsigned-byte
// elements (tt = 0x08) occur in these data sets and only those are accepted.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace veil::data {

struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::span<const std::uint8_t> data;  // view into the parsed buffer, product(dims) bytes
};

// True when `head` starts like an IDX file (00 00, a known element type, 1-4 dims).
bool looks_like_idx(std::span<const std::uint8_t> head);

// Parses the header and checks that the file holds exactly product(dims) bytes after it.
// Throws std::runtime_error naming `name` for a bad magic, a non-byte element type,
// dimensions over the limits, or a truncated / overlong file.
IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name);

// Builds an unsigned-byte IDX file (used by tests and for writing subsets).
std::vector<std::uint8_t> encode_idx(const std::vector<std::uint32_t>& dims,
                                     std::span<const std::uint8_t> data);

}  // namespace veil::data
