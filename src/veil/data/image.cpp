#include "veil/data/image.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "veil/common/error.hpp"
#include "veil/data/file_bytes.hpp"
#include "veil/data/image_codecs.hpp"

namespace veil::data {

namespace detail {

void check_dimensions(long long width, long long height, const std::string& name) {
  VEIL_CHECK_IO(width >= 1 && height >= 1, name << ": empty image (" << width << "x" << height << ")");
  VEIL_CHECK_IO(width <= kMaxImageSide && height <= kMaxImageSide,
                name << ": image is " << width << "x" << height << ", over the " << kMaxImageSide << "x"
                     << kMaxImageSide << " limit");
}

namespace {

// Binary PNM header: magic, width, height, maxval separated by whitespace and '#'
// comments, then exactly one whitespace byte before the samples.
class PnmHeader {
 public:
  PnmHeader(std::span<const std::uint8_t> in, const std::string& name) : in_(in), name_(name) {}

  long long number(const char* what) {
    skip_space_and_comments();
    long long v = 0;
    int digits = 0;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') {
      // The cap only guards the arithmetic; the real limits are checked by the caller.
      if (v < 1'000'000'000) v = v * 10 + (in_[pos_] - '0');
      ++pos_;
      ++digits;
    }
    VEIL_CHECK_IO(digits > 0, name_ << ": corrupt PNM header (expected " << what << ")");
    return v;
  }
  std::size_t end_of_header() {
    VEIL_CHECK_IO(pos_ < in_.size() && is_space(in_[pos_]),
                  name_ << ": corrupt PNM header (no whitespace before the pixel data)");
    return pos_ + 1;
  }

 private:
  static bool is_space(std::uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  void skip_space_and_comments() {
    while (pos_ < in_.size()) {
      if (is_space(in_[pos_])) {
        ++pos_;
      } else if (in_[pos_] == '#') {
        while (pos_ < in_.size() && in_[pos_] != '\n' && in_[pos_] != '\r') ++pos_;
      } else {
        break;
      }
    }
  }

  std::span<const std::uint8_t> in_;
  const std::string& name_;
  std::size_t pos_ = 2;  // after the magic
};

}  // namespace

Interleaved decode_pnm(std::span<const std::uint8_t> bytes, const std::string& name) {
  VEIL_CHECK_IO(bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6'),
                name << ": not a binary PGM/PPM (P5/P6) file");
  PnmHeader header(bytes, name);
  const long long width = header.number("width");
  const long long height = header.number("height");
  const long long maxval = header.number("maxval");
  const std::size_t start = header.end_of_header();
  check_dimensions(width, height, name);
  VEIL_CHECK_IO(maxval >= 1 && maxval <= 65535, name << ": PNM maxval " << maxval << " outside 1..65535");

  Interleaved out;
  out.channels = bytes[1] == '6' ? 3 : 1;
  out.width = static_cast<int>(width);
  out.height = static_cast<int>(height);
  const std::size_t samples = static_cast<std::size_t>(width) * height * out.channels;
  const std::size_t sample_bytes = maxval > 255 ? 2 : 1;  // 16-bit samples are big-endian
  VEIL_CHECK_IO(bytes.size() - start >= samples * sample_bytes,
                name << ": PNM data truncated (" << bytes.size() - start << " of " << samples * sample_bytes
                     << " pixel bytes)");
  out.pixels.resize(samples);
  const std::uint8_t* p = bytes.data() + start;
  for (std::size_t i = 0; i < samples; ++i) {
    std::uint32_t v = sample_bytes == 2 ? (std::uint32_t{p[2 * i]} << 8) | p[2 * i + 1] : p[i];
    VEIL_CHECK_IO(v <= maxval, name << ": PNM sample " << v << " exceeds maxval " << maxval);
    // Rescale to 0..255 with rounding; exact identity when maxval is 255.
    out.pixels[i] = static_cast<std::uint8_t>((v * 255 + maxval / 2) / maxval);
  }
  return out;
}

}  // namespace detail

ImageFormat detect_image_format(std::span<const std::uint8_t> head) {
  static constexpr std::uint8_t kPng[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  if (head.size() >= 8 && std::memcmp(head.data(), kPng, 8) == 0) return ImageFormat::kPng;
  if (head.size() >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff) return ImageFormat::kJpeg;
  if (head.size() >= 2 && head[0] == 'P' && (head[1] == '5' || head[1] == '6')) return ImageFormat::kPnm;
  return ImageFormat::kUnknown;
}

Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name) {
  detail::Interleaved im;
  switch (detect_image_format(bytes)) {
    case ImageFormat::kPng:
      im = detail::decode_png(bytes, name);
      break;
    case ImageFormat::kJpeg:
      im = detail::decode_jpeg(bytes, name);
      break;
    case ImageFormat::kPnm:
      im = detail::decode_pnm(bytes, name);
      break;
    case ImageFormat::kUnknown: {
      const bool ascii_pnm = bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '4';
      VEIL_CHECK_IO(!ascii_pnm, name << ": ASCII or 1-bit PNM (P" << char(bytes[1])
                                     << ") is not supported; use binary P5/P6");
      VEIL_CHECK_IO(false, name << ": unknown image format (expected PNG, JPEG or binary "
                                   "PGM/PPM; "
                                << bytes.size() << " bytes)");
    }
  }
  detail::check_dimensions(im.width, im.height, name);
  // Interleaved HWC (what the C libraries produce) -> channel-major CHW.
  Image out;
  out.channels = im.channels;
  out.height = im.height;
  out.width = im.width;
  out.pixels.resize(im.pixels.size());
  const std::size_t plane = static_cast<std::size_t>(im.height) * im.width;
  for (std::size_t i = 0; i < plane; ++i)
    for (int c = 0; c < im.channels; ++c) out.pixels[c * plane + i] = im.pixels[i * im.channels + c];
  return out;
}

Image load_image(const std::string& path) {
  // Images are small; 256 MiB bounds what a stray huge file can cost us.
  std::vector<std::uint8_t> bytes = read_file_bytes(path, std::size_t{256} << 20);
  return decode_image(bytes, path);
}

namespace {

// One output coordinate's source taps along an axis.
struct Taps {
  std::vector<int> first;     // first source index per output index
  std::vector<int> count;     // number of taps
  std::vector<float> weight;  // count[i] weights starting at offset[i]
  std::vector<std::size_t> offset;
};

// Area averaging when shrinking (each output pixel averages the source interval it
// covers, fractional at the ends); bilinear with pixel-centre alignment when enlarging
// (source coordinate (i + 0.5) * in / out - 0.5, clamped at the borders).
Taps make_taps(int in, int out) {
  Taps t;
  t.first.resize(out);
  t.count.resize(out);
  t.offset.resize(out);
  const double scale = static_cast<double>(in) / out;
  for (int i = 0; i < out; ++i) {
    t.offset[i] = t.weight.size();
    if (in > out) {
      const double lo = i * scale, hi = (i + 1) * scale;
      const int a = static_cast<int>(std::floor(lo));
      const int b = std::min(in, static_cast<int>(std::ceil(hi)));
      t.first[i] = a;
      t.count[i] = b - a;
      for (int s = a; s < b; ++s) {
        const double cover = std::min<double>(hi, s + 1) - std::max<double>(lo, s);
        t.weight.push_back(static_cast<float>(cover / scale));
      }
    } else {
      const double src = std::clamp((i + 0.5) * scale - 0.5, 0.0, in - 1.0);
      const int a = static_cast<int>(std::floor(src));
      const double frac = src - a;
      t.first[i] = a;
      if (a + 1 < in && frac > 0) {
        t.count[i] = 2;
        t.weight.push_back(static_cast<float>(1 - frac));
        t.weight.push_back(static_cast<float>(frac));
      } else {
        t.count[i] = 1;
        t.weight.push_back(1.0f);
      }
    }
  }
  return t;
}

Image resize(const Image& in, int height, int width) {
  // Separable: rows first into a float buffer, then columns.
  const Taps tx = make_taps(in.width, width), ty = make_taps(in.height, height);
  Image out;
  out.channels = in.channels;
  out.height = height;
  out.width = width;
  out.pixels.resize(out.size());
  std::vector<float> tmp(static_cast<std::size_t>(in.height) * width);
  for (int c = 0; c < in.channels; ++c) {
    const std::uint8_t* src = in.pixels.data() + static_cast<std::size_t>(c) * in.height * in.width;
    for (int y = 0; y < in.height; ++y) {
      for (int x = 0; x < width; ++x) {
        float acc = 0;
        for (int k = 0; k < tx.count[x]; ++k)
          acc += tx.weight[tx.offset[x] + k] * src[y * in.width + tx.first[x] + k];
        tmp[static_cast<std::size_t>(y) * width + x] = acc;
      }
    }
    std::uint8_t* dst = out.pixels.data() + static_cast<std::size_t>(c) * height * width;
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        float acc = 0;
        for (int k = 0; k < ty.count[y]; ++k)
          acc += ty.weight[ty.offset[y] + k] * tmp[static_cast<std::size_t>(ty.first[y] + k) * width + x];
        dst[static_cast<std::size_t>(y) * width + x] =
            static_cast<std::uint8_t>(std::clamp(std::lround(acc), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace

Image to_model_input(const Image& image, int channels, int height, int width) {
  VEIL_REQUIRE(channels == 1 || channels == 3, "to_model_input: channels must be 1 or 3, got " << channels);
  VEIL_REQUIRE(height >= 1 && width >= 1 && height <= kMaxImageSide && width <= kMaxImageSide,
               "to_model_input: bad target size " << height << "x" << width);
  VEIL_REQUIRE(image.channels >= 1 && image.channels <= 4 && image.height >= 1 && image.width >= 1 &&
                   image.pixels.size() == image.size(),
               "to_model_input: malformed image (" << image.channels << "x" << image.height << "x"
                                                   << image.width << ", " << image.pixels.size()
                                                   << " bytes)");
  const std::size_t plane = static_cast<std::size_t>(image.height) * image.width;
  const bool colour = image.channels >= 3;  // 2 is gray + alpha, 4 is RGBA

  Image conv;
  conv.channels = channels;
  conv.height = image.height;
  conv.width = image.width;
  conv.pixels.resize(channels * plane);
  if (channels == 1 && colour) {
    const std::uint8_t *r = image.pixels.data(), *g = r + plane, *b = g + plane;
    for (std::size_t i = 0; i < plane; ++i)
      conv.pixels[i] = static_cast<std::uint8_t>(std::lround(0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i]));
  } else if (channels == 3 && !colour) {
    for (int c = 0; c < 3; ++c) std::copy_n(image.pixels.begin(), plane, conv.pixels.begin() + c * plane);
  } else {
    // Same colour model: keep the first `channels` planes (drops alpha).
    std::copy_n(image.pixels.begin(), channels * plane, conv.pixels.begin());
  }
  if (height == image.height && width == image.width) return conv;
  return resize(conv, height, width);
}

void save_png(const std::string& path, const Image& image) {
  VEIL_REQUIRE(image.pixels.size() == image.size(),
               "save_png: pixel buffer holds " << image.pixels.size() << " bytes, expected " << image.size());
  detail::Interleaved im;
  im.channels = image.channels;
  im.height = image.height;
  im.width = image.width;
  im.pixels.resize(image.size());
  const std::size_t plane = static_cast<std::size_t>(image.height) * image.width;
  for (std::size_t i = 0; i < plane; ++i)
    for (int c = 0; c < image.channels; ++c) im.pixels[i * image.channels + c] = image.pixels[c * plane + i];
  detail::write_png(path, im);
}

}  // namespace veil::data
