// Whole-file reads and writes with errors that name the file and the reason. The one raw
// reader of the code base: serialised keys and ciphertexts use it directly, data sets add
// their gzip/xz decompression on top of it (data/file_bytes.hpp).
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "veil/common/bytes.hpp"

namespace veil {

// Reads `path` whole. Throws std::runtime_error when it is missing, unreadable or larger
// than max_bytes (checked before the buffer is allocated where the size is known).
Bytes read_file(const std::string& path, std::size_t max_bytes = std::size_t{16} << 30);

// Writes `bytes` to `path`, replacing it.
void write_file(const std::string& path, std::span<const std::uint8_t> bytes);

}  // namespace veil
