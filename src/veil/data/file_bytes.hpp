// Whole-file reads with transparent decompression. Data sets arrive raw, gzip-compressed
// (the Fashion-MNIST Debian package, the original MNIST downloads) or xz-compressed (our
// reconstructed CIFAR-10 copy); the format is detected from the magic bytes, never from
// the file name, so a renamed file still loads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace veil::data {

enum class Compression { kNone, kGzip, kXz };

// The compression a file starting with `head` uses (gzip: 1f 8b, xz: fd '7zXZ' 00).
Compression detect_compression(std::span<const std::uint8_t> head);

// Largest decompressed size read_file_bytes accepts by default: the 60,000-image MNIST
// training set is 47 MB and CIFAR-10's five training batches 154 MB, so 1 GiB leaves room
// while still stopping a decompression bomb.
inline constexpr std::size_t kMaxFileBytes = std::size_t{1} << 30;

// Reads `path` whole, decompressing gzip or xz. Throws std::runtime_error naming the file
// when it is missing, unreadable, corrupt, truncated or larger than max_bytes once
// decompressed.
std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes = kMaxFileBytes);

// Decompresses an in-memory gzip or xz stream; `name` is used in error messages.
std::vector<std::uint8_t> decompress(std::span<const std::uint8_t> bytes, Compression kind,
                                     const std::string& name, std::size_t max_bytes = kMaxFileBytes);

}  // namespace veil::data
