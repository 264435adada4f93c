// 8-bit images for the model inputs: PNG, JPEG and binary PPM/PGM, detected by their
// magic bytes. Pixels are stored channel-major (C x H x W), the order the networks use
// (ONNX NCHW), so a loaded image feeds a model without reshuffling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace veil::data {

// Larger sides are rejected before any pixel buffer is allocated.
inline constexpr int kMaxImageSide = 16384;

struct Image {
  int channels = 0, height = 0, width = 0;  // channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  std::vector<std::uint8_t> pixels;         // channels * height * width bytes, CHW

  std::size_t size() const { return static_cast<std::size_t>(channels) * height * width; }
  std::uint8_t at(int c, int y, int x) const {
    return pixels[(static_cast<std::size_t>(c) * height + y) * width + x];
  }
};

enum class ImageFormat { kUnknown, kPng, kJpeg, kPnm };

// Recognises PNG (89 'PNG' 0d 0a 1a 0a), JPEG (ff d8 ff) and binary PGM/PPM ('P5', 'P6').
ImageFormat detect_image_format(std::span<const std::uint8_t> head);

// Reads PNG (8/16-bit gray, gray+alpha, RGB, RGBA, palette; 16-bit is scaled to 8),
// baseline/progressive JPEG (gray or colour) and binary PGM/PPM. Sample values are taken
// as stored (no gamma or colour-profile conversion). Throws std::runtime_error naming the
// file for a missing file, an unknown format, corrupt or truncated data, or a side over
// kMaxImageSide.
Image load_image(const std::string& path);

// The same decoders on bytes already in memory; `name` is used in error messages.
Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name);

// Converts to what a model expects: gray <-> RGB (ITU-R BT.601 luminance
// 0.299 R + 0.587 G + 0.114 B), alpha dropped (not composited), then resized to
// height x width when the size differs: area averaging when shrinking an axis, bilinear
// (pixel-centre aligned) when enlarging. channels must be 1 or 3.
Image to_model_input(const Image& image, int channels, int height, int width);

// Writes an 8-bit PNG with 1-4 channels. Throws std::runtime_error when the file cannot
// be written (a partial file is removed).
void save_png(const std::string& path, const Image& image);

}  // namespace veil::data
