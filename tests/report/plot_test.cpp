#include "veil/report/plot.hpp"

#include <gtest/gtest.h>
#include <png.h>

#include <cmath>

#include "data/data_test_util.hpp"
#include "veil/report/font.hpp"

namespace veil::report {
namespace {

using data::test::TempDir;

BarPanel panel(std::string title, std::string y_label, std::vector<std::string> labels,
               std::vector<double> values) {
  BarPanel p;
  p.title = std::move(title);
  p.y_label = std::move(y_label);
  p.labels = std::move(labels);
  p.values = std::move(values);
  return p;
}

TEST(Plot, TwoPanelReportIsAValidPng) {
  TempDir dir;
  const std::vector<std::string> stages = {"conv1", "poly1", "conv2+pool",
                                           "poly2", "fc1",   "fc2+softmax_is_a_long_name_here"};
  const std::vector<double> seconds = {1.25, 0.31, 4.8, 0.22, 0.9, 0.05};
  const std::vector<double> bits = {21.3, 18.9, 17.2, 15.0, NAN, 14.1};
  const std::string path = dir.file("report.png");
  write_two_panel_png(path, stages, seconds, bits, "mnist-delphi");

  // Read back with libpng itself, not our decoder.
  png_image im{};
  im.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&im, path.c_str())) << im.message;
  EXPECT_EQ(im.width, 900u);
  EXPECT_GT(im.height, 600u);
  EXPECT_LT(im.height, 1000u);
  im.format = PNG_FORMAT_RGB;
  std::vector<std::uint8_t> px(PNG_IMAGE_SIZE(im));
  ASSERT_TRUE(png_image_finish_read(&im, nullptr, px.data(), 0, nullptr)) << im.message;

  const Image ours = render_panels({panel("t", "y", {"a"}, {1.0})}, 400);
  EXPECT_EQ(ours.channels, 3);
  EXPECT_EQ(ours.width, 400);
  // Something was drawn: dark text pixels and coloured bars.
  std::size_t dark = 0, coloured = 0;
  for (std::size_t i = 0; i + 2 < px.size(); i += 3) {
    if (px[i] < 80 && px[i + 1] < 80 && px[i + 2] < 80) ++dark;
    if (px[i + 2] > px[i] + 60) ++coloured;  // the blue bars
  }
  EXPECT_GT(dark, 2000u);
  EXPECT_GT(coloured, 5000u);
}

TEST(Plot, SinglePanelAndArgumentChecks) {
  TempDir dir;
  write_bar_chart_png(dir.file("bar.png"), "Accuracy", {"plain", "encrypted"}, {99.1, 98.7}, "%");
  EXPECT_EQ(data::load_image(dir.file("bar.png")).width, 900);

  const BarPanel bad = panel("t", "y", {"a", "b"}, {1.0});
  EXPECT_THROW(render_panels({bad}), std::invalid_argument);
  EXPECT_THROW(render_panels({}), std::invalid_argument);
  EXPECT_THROW(render_panels({panel("t", "y", {}, {})}), std::invalid_argument);
  EXPECT_THROW(render_panels({panel("t", "y", {"a"}, {1.0})}, 100), std::invalid_argument);
  // Negative values, a reference line and a line style render without trouble.
  BarPanel p = panel("margins", "logit", {"a", "b", "c"}, {-2.5, 0.0, 3.75});
  p.style = BarPanel::Style::kLine;
  p.reference = 1.0;
  p.reference_label = "target";
  EXPECT_EQ(render_panels({p, p}, 500).width, 500);
  EXPECT_THROW(write_panels_png(dir.file("no/such/dir/x.png"), {p}), std::runtime_error);
}

TEST(Plot, FontCoversPrintableAscii) {
  // Every printable character except space has ink; others fall back to '?'.
  for (int c = 33; c < 127; ++c) {
    const std::uint8_t* g = font::glyph(static_cast<char>(c));
    int ink = 0;
    for (int r = 0; r < font::kGlyphHeight; ++r) ink |= g[r];
    EXPECT_NE(ink, 0) << "char " << c;
    EXPECT_EQ(ink & ~0x1f, 0) << "char " << c;
  }
  EXPECT_EQ(font::glyph('\x01'), font::glyph('?'));
}

}  // namespace
}  // namespace veil::report
