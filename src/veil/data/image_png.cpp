// PNG through libpng's classic interface. libpng reports errors by longjmp; jumping over
// C++ frames that own resources is undefined, so each libpng call sequence runs in a
// small function whose only state lives in its caller's frame (passed by pointer). After
// the jump, that function returns false and the caller, an ordinary C++ frame, frees the
// libpng structures and throws.
#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "veil/common/error.hpp"
#include "veil/data/image.hpp"
#include "veil/data/image_codecs.hpp"

namespace veil::data::detail {

namespace {

struct PngState {
  std::span<const std::uint8_t> in;
  std::size_t pos = 0;
  char error[256] = {};
  Interleaved* out = nullptr;
  std::vector<png_bytep>* rows = nullptr;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(st->error, sizeof st->error, "%s", msg);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {
  // Warnings (bad ancillary chunk CRC, unknown chunks) do not affect the pixels.
}

void on_read(png_structp png, png_bytep dst, std::size_t n) {
  auto* st = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > st->in.size() - st->pos) png_error(png, "file truncated");
  std::memcpy(dst, st->in.data() + st->pos, n);
  st->pos += n;
}

bool run_read(png_structp png, png_infop info, PngState* st) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, st, on_read);
  png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
  png_read_info(png, info);
  png_uint_32 width = 0, height = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &width, &height, &depth, &color, nullptr, nullptr, nullptr);
  if (width > static_cast<png_uint_32>(kMaxImageSide) || height > static_cast<png_uint_32>(kMaxImageSide)) {
    std::snprintf(st->error, sizeof st->error, "image is %ux%u, over the %dx%d limit",
                  static_cast<unsigned>(width), static_cast<unsigned>(height), kMaxImageSide, kMaxImageSide);
    return false;
  }
  // Palette -> RGB, gray below 8 bits -> 8 bits, tRNS -> alpha channel.
  png_set_expand(png);
  // 16 -> 8 bits by rounding (v * 255 / 65535), not by dropping the low byte.
  if (depth == 16) png_set_scale_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  if (png_get_rowbytes(png, info) != static_cast<std::size_t>(width) * channels) {
    std::snprintf(st->error, sizeof st->error, "unexpected row layout after conversion");
    return false;
  }
  Interleaved& out = *st->out;
  out.channels = channels;
  out.height = static_cast<int>(height);
  out.width = static_cast<int>(width);
  out.pixels.resize(static_cast<std::size_t>(width) * height * channels);
  st->rows->resize(height);
  for (png_uint_32 y = 0; y < height; ++y)
    (*st->rows)[y] = out.pixels.data() + static_cast<std::size_t>(y) * width * channels;
  png_read_image(png, st->rows->data());
  png_read_end(png, nullptr);
  return true;
}

struct ReadGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadGuard() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

struct WriteState {
  char error[256] = {};
};

void on_write_error(png_structp png, png_const_charp msg) {
  auto* st = static_cast<WriteState*>(png_get_error_ptr(png));
  std::snprintf(st->error, sizeof st->error, "%s", msg);
  png_longjmp(png, 1);
}

bool run_write(png_structp png, png_infop info, std::FILE* f, const Interleaved* im, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  static constexpr int kColor[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                    PNG_COLOR_TYPE_RGB_ALPHA};
  png_init_io(png, f);
  png_set_IHDR(png, info, static_cast<png_uint_32>(im->width), static_cast<png_uint_32>(im->height), 8,
               kColor[im->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

struct WriteGuard {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~WriteGuard() { png_destroy_write_struct(&png, info ? &info : nullptr); }
};

}  // namespace

Interleaved decode_png(std::span<const std::uint8_t> bytes, const std::string& name) {
  // IHDR must be the first chunk: check the size before libpng allocates anything, and
  // before it wants the chunks that follow (so a bare oversized header says "limit").
  if (bytes.size() >= 24 && std::memcmp(bytes.data() + 12, "IHDR", 4) == 0) {
    auto be32 = [&](std::size_t at) {
      return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
             (std::uint32_t{bytes[at + 2]} << 8) | bytes[at + 3];
    };
    check_dimensions(be32(16), be32(20), name);
  }
  Interleaved out;
  std::vector<png_bytep> rows;
  PngState st;
  st.in = bytes;
  st.out = &out;
  st.rows = &rows;
  ReadGuard g;
  g.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, on_error, on_warning);
  VEIL_CHECK_IO(g.png != nullptr, name << ": cannot create PNG decoder");
  g.info = png_create_info_struct(g.png);
  VEIL_CHECK_IO(g.info != nullptr, name << ": cannot create PNG decoder");
  VEIL_CHECK_IO(run_read(g.png, g.info, &st), name << ": corrupt PNG (" << st.error << ")");
  return out;
}

void write_png(const std::string& path, const Interleaved& image) {
  VEIL_REQUIRE(image.channels >= 1 && image.channels <= 4,
               "save_png: channels must be 1-4, got " << image.channels);
  VEIL_REQUIRE(
      image.width >= 1 && image.height >= 1 && image.width <= kMaxImageSide && image.height <= kMaxImageSide,
      "save_png: bad size " << image.width << "x" << image.height);
  VEIL_REQUIRE(image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * image.channels,
               "save_png: pixel buffer holds " << image.pixels.size() << " bytes, expected "
                                               << image.width * image.height * image.channels);
  std::vector<png_bytep> rows(image.height);
  const std::size_t stride = static_cast<std::size_t>(image.width) * image.channels;
  for (int y = 0; y < image.height; ++y) rows[y] = const_cast<png_bytep>(image.pixels.data() + y * stride);

  std::FILE* f = std::fopen(path.c_str(), "wb");
  VEIL_CHECK_IO(f != nullptr, "cannot create " << path << ": " << std::strerror(errno));
  WriteState st;
  bool ok = false;
  {
    WriteGuard g;
    g.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, on_write_error, on_warning);
    if (g.png) g.info = png_create_info_struct(g.png);
    if (g.info)
      ok = run_write(g.png, g.info, f, &image, rows.data());
    else
      std::snprintf(st.error, sizeof st.error, "cannot create PNG encoder");
  }
  // fclose flushes; a full disk shows up here rather than in libpng.
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(path.c_str());
    VEIL_CHECK_IO(false, "cannot write " << path << ": " << (ok ? std::strerror(errno) : st.error));
  }
}

}  // namespace veil::data::detail
