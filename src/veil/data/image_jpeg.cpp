// JPEG through libjpeg(-turbo). Its default error handler calls exit(); we install one
// that formats the message and longjmps back into run_read, whose only state lives in the
// caller's frame (see image_png.cpp for why). Warnings (libjpeg's word for recoverable
// corruption, e.g. a truncated file padded with gray) are errors here: a model input that
// is partly invented should not be classified silently.
#include <cstdio>

#include <jpeglib.h>

#include <csetjmp>
#include <cstring>

#include "veil/common/error.hpp"
#include "veil/data/image.hpp"
#include "veil/data/image_codecs.hpp"

namespace veil::data::detail {

namespace {

struct ErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg hands us a jpeg_error_mgr*
  std::jmp_buf jump;
  char error[JMSG_LENGTH_MAX] = {};
  char warning[JMSG_LENGTH_MAX] = {};
  int warnings = 0;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->error);
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (err->warnings++ == 0) (*cinfo->err->format_message)(cinfo, err->warning);
}

bool run_read(jpeg_decompress_struct* cinfo, ErrorManager* err, std::span<const std::uint8_t> in,
              Interleaved* out) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  // Bounds libjpeg's own working memory (progressive files buffer whole coefficients).
  cinfo->mem->max_memory_to_use = 1L << 30;
  jpeg_mem_src(cinfo, const_cast<unsigned char*>(in.data()), static_cast<unsigned long>(in.size()));
  jpeg_read_header(cinfo, TRUE);
  if (cinfo->image_width > static_cast<JDIMENSION>(kMaxImageSide) ||
      cinfo->image_height > static_cast<JDIMENSION>(kMaxImageSide)) {
    std::snprintf(err->error, sizeof err->error, "image is %ux%u, over the %dx%d limit",
                  static_cast<unsigned>(cinfo->image_width), static_cast<unsigned>(cinfo->image_height),
                  kMaxImageSide, kMaxImageSide);
    return false;
  }
  cinfo->out_color_space = cinfo->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(cinfo);
  out->channels = cinfo->output_components;
  out->width = static_cast<int>(cinfo->output_width);
  out->height = static_cast<int>(cinfo->output_height);
  const std::size_t stride = static_cast<std::size_t>(out->width) * out->channels;
  out->pixels.resize(stride * out->height);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out->pixels.data() + cinfo->output_scanline * stride;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

}  // namespace

Interleaved decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name) {
  Interleaved out;
  jpeg_decompress_struct cinfo;
  std::memset(&cinfo, 0, sizeof cinfo);  // jpeg_destroy is then safe even before create
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error_exit;
  err.pub.emit_message = on_message;
  const bool ok = run_read(&cinfo, &err, bytes, &out);
  jpeg_destroy_decompress(&cinfo);
  VEIL_CHECK_IO(ok, name << ": corrupt JPEG (" << err.error << ")");
  VEIL_CHECK_IO(err.warnings == 0, name << ": corrupt JPEG (" << err.warning << ")");
  return out;
}

}  // namespace veil::data::detail
