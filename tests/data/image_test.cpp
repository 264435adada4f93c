#include "veil/data/image.hpp"

#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <cstdio>

#include <jpeglib.h>

#include "data_test_util.hpp"
#include "veil/data/dataset.hpp"

namespace veil::data {
namespace {

using test::sample;
using test::slurp;
using test::spit;
using test::TempDir;

// The PNG samples were written from the first test records; check the decoder reproduces
// them byte for byte.
TEST(Image, SamplePngsMatchIdxAndCifarRecords) {
  const Dataset mnist = load_dataset(sample("mnist-test-first16-images-idx3-ubyte"));
  const Dataset fashion = load_dataset(sample("fashion-test-first16-images-idx3-ubyte"));
  const Dataset cifar = load_dataset(sample("cifar10-test-first16-exact.bin"));
  const char* mnist_png[] = {"mnist-0-label7.png", "mnist-1-label2.png", "mnist-2-label1.png",
                             "mnist-3-label0.png"};
  const char* fashion_png[] = {"fashion-0-label9-ankle-boot.png", "fashion-1-label2-pullover.png",
                               "fashion-2-label1-trouser.png", "fashion-3-label1-trouser.png"};
  const char* cifar_png[] = {"cifar10-0-label3-cat.png", "cifar10-1-label8-ship.png",
                             "cifar10-2-label8-ship.png", "cifar10-3-label0-airplane.png"};
  for (int i = 0; i < 4; ++i) {
    const Image m = load_image(sample(mnist_png[i]));
    ASSERT_EQ(m.channels, 1);
    ASSERT_EQ(m.height, 28);
    ASSERT_EQ(m.width, 28);
    EXPECT_EQ(m.pixels, mnist.image(i).pixels) << mnist_png[i];
    EXPECT_EQ(load_image(sample(fashion_png[i])).pixels, fashion.image(i).pixels) << fashion_png[i];
    const Image c = load_image(sample(cifar_png[i]));
    ASSERT_EQ(c.channels, 3);
    ASSERT_EQ(c.height, 32);
    EXPECT_EQ(c.pixels, cifar.image(i).pixels) << cifar_png[i];
  }
  EXPECT_EQ(mnist.labels[0], 7);
  EXPECT_EQ(fashion.labels[0], 9);
  EXPECT_EQ(cifar.labels[0], 3);
}

Image pattern(int channels, int height, int width) {
  Image im{channels, height, width, {}};
  im.pixels.resize(im.size());
  for (std::size_t i = 0; i < im.pixels.size(); ++i) im.pixels[i] = static_cast<std::uint8_t>(i * 37 + 11);
  return im;
}

TEST(Image, PngRoundTripEveryChannelCount) {
  TempDir dir;
  for (int c = 1; c <= 4; ++c) {
    const Image im = pattern(c, 5, 7);
    const std::string path = dir.file("rt" + std::to_string(c) + ".png");
    save_png(path, im);
    const Image back = load_image(path);
    EXPECT_EQ(back.channels, c);
    EXPECT_EQ(back.height, 5);
    EXPECT_EQ(back.width, 7);
    EXPECT_EQ(back.pixels, im.pixels) << "channels " << c;
  }
}

TEST(Image, PngPaletteAnd16Bit) {
  TempDir dir;
  // Palette: 2x2 indices into a 3-entry RGB colour map.
  png_image pal{};
  pal.version = PNG_IMAGE_VERSION;
  pal.width = 2;
  pal.height = 2;
  pal.format = PNG_FORMAT_RGB_COLORMAP;
  pal.colormap_entries = 3;
  const std::uint8_t cmap[9] = {255, 0, 0, 0, 255, 0, 10, 20, 30};
  const std::uint8_t idx[4] = {0, 1, 2, 0};
  ASSERT_TRUE(png_image_write_to_file(&pal, dir.file("pal.png").c_str(), 0, idx, 0, cmap)) << pal.message;
  const Image p = load_image(dir.file("pal.png"));
  ASSERT_EQ(p.channels, 3);
  EXPECT_EQ(p.at(0, 0, 0), 255);
  EXPECT_EQ(p.at(1, 0, 1), 255);
  EXPECT_EQ(p.at(0, 1, 0), 10);
  EXPECT_EQ(p.at(1, 1, 0), 20);
  EXPECT_EQ(p.at(2, 1, 0), 30);

  // 16-bit gray: values are scaled to 8 bits with rounding, no gamma conversion.
  png_image g16{};
  g16.version = PNG_IMAGE_VERSION;
  g16.width = 3;
  g16.height = 1;
  g16.format = PNG_FORMAT_LINEAR_Y;
  const std::uint16_t v[3] = {0, 0x8080, 0xffff};
  ASSERT_TRUE(png_image_write_to_file(&g16, dir.file("g16.png").c_str(), 0, v, 0, nullptr)) << g16.message;
  const Image g = load_image(dir.file("g16.png"));
  ASSERT_EQ(g.channels, 1);
  EXPECT_EQ(g.pixels, (std::vector<std::uint8_t>{0, 128, 255}));
}

std::uint32_t be(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
  return v;
}

// A PNG signature plus an IHDR chunk with a valid CRC: enough for libpng to read the size.
std::vector<std::uint8_t> png_header_only(std::uint32_t width, std::uint32_t height) {
  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  be(out, 13);
  const std::size_t type_at = out.size();
  for (char ch : {'I', 'H', 'D', 'R'}) out.push_back(static_cast<std::uint8_t>(ch));
  be(out, width);
  be(out, height);
  for (std::uint8_t b : {8, 0, 0, 0, 0}) out.push_back(b);  // 8-bit gray
  be(out, static_cast<std::uint32_t>(crc32(0, out.data() + type_at, 17)));
  return out;
}

TEST(Image, CorruptTruncatedAndOversizedPngThrow) {
  TempDir dir;
  save_png(dir.file("ok.png"), pattern(3, 16, 16));
  std::vector<std::uint8_t> bytes = slurp(dir.file("ok.png"));

  spit(dir.file("trunc.png"), {bytes.begin(), bytes.begin() + bytes.size() / 2});
  EXPECT_THROW(load_image(dir.file("trunc.png")), std::runtime_error);

  std::vector<std::uint8_t> flipped = bytes;
  flipped[bytes.size() - 20] ^= 0x55;  // inside IDAT: CRC mismatch
  spit(dir.file("flip.png"), flipped);
  EXPECT_THROW(load_image(dir.file("flip.png")), std::runtime_error);

  spit(dir.file("huge.png"), png_header_only(20000, 10));
  try {
    load_image(dir.file("huge.png"));
    FAIL() << "oversized PNG accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("huge.png"), std::string::npos) << e.what();
  }
  spit(dir.file("zero.png"), png_header_only(0, 10));
  EXPECT_THROW(load_image(dir.file("zero.png")), std::runtime_error);
}

TEST(Image, MissingEmptyAndUnknownFilesThrowNamingTheFile) {
  TempDir dir;
  try {
    load_image(dir.file("nope.png"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.png"), std::string::npos) << e.what();
  }
  spit(dir.file("empty.png"), {});
  EXPECT_THROW(load_image(dir.file("empty.png")), std::runtime_error);
  spit(dir.file("text.png"), {'h', 'e', 'l', 'l', 'o'});
  try {
    load_image(dir.file("text.png"));
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown image format"), std::string::npos) << e.what();
  }
  spit(dir.file("ascii.pgm"), {'P', '2', '\n', '1', ' ', '1', '\n', '2', '\n', '0'});
  EXPECT_THROW(load_image(dir.file("ascii.pgm")), std::runtime_error);
}

std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

TEST(Image, BinaryPgmAndPpm) {
  TempDir dir;
  std::vector<std::uint8_t> ppm = bytes_of("P6\n# made by a test\n2 1\n255\n");
  for (std::uint8_t b : {1, 2, 3, 4, 5, 6}) ppm.push_back(b);
  spit(dir.file("a.ppm"), ppm);
  const Image c = load_image(dir.file("a.ppm"));
  ASSERT_EQ(c.channels, 3);
  ASSERT_EQ(c.width, 2);
  EXPECT_EQ(c.pixels, (std::vector<std::uint8_t>{1, 4, 2, 5, 3, 6}));  // CHW

  std::vector<std::uint8_t> pgm = bytes_of("P5 3 1 15 ");
  for (std::uint8_t b : {0, 7, 15}) pgm.push_back(b);
  spit(dir.file("b.pgm"), pgm);
  EXPECT_EQ(load_image(dir.file("b.pgm")).pixels, (std::vector<std::uint8_t>{0, 119, 255}));

  std::vector<std::uint8_t> pgm16 = bytes_of("P5 2 1 65535\n");
  for (std::uint8_t b : {0x80, 0x80, 0xff, 0xff}) pgm16.push_back(b);
  spit(dir.file("c.pgm"), pgm16);
  EXPECT_EQ(load_image(dir.file("c.pgm")).pixels, (std::vector<std::uint8_t>{128, 255}));

  spit(dir.file("trunc.ppm"), {ppm.begin(), ppm.end() - 2});
  EXPECT_THROW(load_image(dir.file("trunc.ppm")), std::runtime_error);
  spit(dir.file("huge.pgm"), bytes_of("P5 20000 10 255\n"));
  EXPECT_THROW(load_image(dir.file("huge.pgm")), std::runtime_error);
  spit(dir.file("nosize.pgm"), bytes_of("P5 # no numbers\n"));
  EXPECT_THROW(load_image(dir.file("nosize.pgm")), std::runtime_error);
  std::vector<std::uint8_t> over = bytes_of("P5 1 1 15 ");
  over.push_back(16);
  spit(dir.file("over.pgm"), over);
  EXPECT_THROW(load_image(dir.file("over.pgm")), std::runtime_error);
}

std::vector<std::uint8_t> make_jpeg(int channels, int height, int width,
                                    const std::vector<std::uint8_t>& hwc) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(hwc.data() + cinfo.next_scanline * width * channels);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<std::uint8_t> out(buf, buf + size);
  std::free(buf);
  return out;
}

TEST(Image, JpegGrayAndColour) {
  TempDir dir;
  // Smooth content so quality-100 JPEG stays within a few levels.
  std::vector<std::uint8_t> gray(16 * 24), rgb(16 * 24 * 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x) {
      gray[y * 24 + x] = static_cast<std::uint8_t>(40 + 4 * x + 2 * y);
      for (int c = 0; c < 3; ++c)
        rgb[(y * 24 + x) * 3 + c] = static_cast<std::uint8_t>(60 + 50 * c + 2 * x + y);
    }
  spit(dir.file("g.jpg"), make_jpeg(1, 16, 24, gray));
  spit(dir.file("c.jpg"), make_jpeg(3, 16, 24, rgb));
  const Image g = load_image(dir.file("g.jpg"));
  ASSERT_EQ(g.channels, 1);
  ASSERT_EQ(g.height, 16);
  ASSERT_EQ(g.width, 24);
  for (int i = 0; i < 16 * 24; ++i) EXPECT_NEAR(g.pixels[i], gray[i], 3) << i;
  const Image c = load_image(dir.file("c.jpg"));
  ASSERT_EQ(c.channels, 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 24; ++x)
      for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(c.at(ch, y, x), rgb[(y * 24 + x) * 3 + ch], 6);

  // Truncated: libjpeg would pad with gray and warn; we refuse.
  std::vector<std::uint8_t> bytes = slurp(dir.file("c.jpg"));
  spit(dir.file("trunc.jpg"), {bytes.begin(), bytes.begin() + bytes.size() * 2 / 3});
  EXPECT_THROW(load_image(dir.file("trunc.jpg")), std::runtime_error);
  // Garbage after the SOI marker: a hard libjpeg error, reported, not exit().
  spit(dir.file("bad.jpg"), {0xff, 0xd8, 0xff, 0x00, 0x12, 0x34, 0x56});
  EXPECT_THROW(load_image(dir.file("bad.jpg")), std::runtime_error);
}

TEST(Image, ModelInputColourConversion) {
  // CHW planes: R {10, 200}, G {20, 100}, B {30, 50}, A {255, 0}.
  const Image rgba{4, 1, 2, {10, 200, 20, 100, 30, 50, 255, 0}};
  const Image gray = to_model_input(rgba, 1, 1, 2);
  ASSERT_EQ(gray.channels, 1);
  EXPECT_EQ(gray.pixels, (std::vector<std::uint8_t>{18, 124}));  // 18.15, 124.2 (BT.601)
  const Image rgb = to_model_input(rgba, 3, 1, 2);
  EXPECT_EQ(rgb.pixels, (std::vector<std::uint8_t>{10, 200, 20, 100, 30, 50}));  // alpha dropped
  const Image g{2, 1, 2, {7, 9, 255, 255}};                                      // gray + alpha
  EXPECT_EQ(to_model_input(g, 3, 1, 2).pixels, (std::vector<std::uint8_t>{7, 9, 7, 9, 7, 9}));
  EXPECT_EQ(to_model_input(g, 1, 1, 2).pixels, (std::vector<std::uint8_t>{7, 9}));
  EXPECT_THROW(to_model_input(g, 2, 1, 2), std::invalid_argument);
  EXPECT_THROW(to_model_input(g, 1, 0, 2), std::invalid_argument);
  EXPECT_THROW(to_model_input(Image{1, 2, 2, {1, 2, 3}}, 1, 2, 2), std::invalid_argument);
}

TEST(Image, ModelInputResize) {
  // Shrinking averages the covered area: 4x4 -> 2x2 is the mean of each 2x2 block.
  Image big{1, 4, 4, {0, 2, 10, 20, 4, 6, 30, 40, 100, 100, 0, 0, 100, 100, 0, 8}};
  EXPECT_EQ(to_model_input(big, 1, 2, 2).pixels, (std::vector<std::uint8_t>{3, 25, 100, 2}));
  // Fractional coverage: 3 -> 2 gives (2/3, 1/3) and (1/3, 2/3) weights.
  EXPECT_EQ(to_model_input(Image{1, 1, 3, {0, 30, 60}}, 1, 1, 2).pixels, (std::vector<std::uint8_t>{10, 50}));
  // Enlarging is bilinear with pixel centres aligned and edges clamped.
  EXPECT_EQ(to_model_input(Image{1, 1, 2, {0, 100}}, 1, 1, 4).pixels,
            (std::vector<std::uint8_t>{0, 25, 75, 100}));
  // A 32x32 colour image to the 28x28 gray MNIST input: constant stays constant.
  Image flat{3, 32, 32, std::vector<std::uint8_t>(3 * 32 * 32, 77)};
  const Image m = to_model_input(flat, 1, 28, 28);
  ASSERT_EQ(m.size(), 28u * 28u);
  for (auto v : m.pixels) ASSERT_EQ(v, 77);
}

}  // namespace
}  // namespace veil::data
