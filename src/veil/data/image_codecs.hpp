// Internal: the format-specific decoders behind decode_image and the PNG writer shared
// with the plot code. Each returns pixels interleaved (H x W x C) as the C libraries
// produce them; image.cpp converts to channel-major.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace veil::data::detail {

struct Interleaved {
  int channels = 0, height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // HWC
};

Interleaved decode_png(std::span<const std::uint8_t> bytes, const std::string& name);
Interleaved decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name);
Interleaved decode_pnm(std::span<const std::uint8_t> bytes, const std::string& name);

void write_png(const std::string& path, const Interleaved& image);

// Shared guard for decoders: width/height within [1, kMaxImageSide].
void check_dimensions(long long width, long long height, const std::string& name);

}  // namespace veil::data::detail
