#include "veil/report/plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "veil/common/error.hpp"
#include "veil/report/font.hpp"

namespace veil::report {

namespace {

struct Rgb {
  std::uint8_t r, g, b;
};

constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrid{225, 225, 225}, kText{40, 40, 40},
    kReference{200, 40, 40};
constexpr Rgb kSeries[] = {{66, 114, 176}, {221, 132, 82}, {85, 168, 104}, {196, 78, 82}};

// RGB raster, row-major interleaved while drawing; converted to CHW at the end.
class Canvas {
 public:
  Canvas(int width, int height)
      : w_(width), h_(height), px_(static_cast<std::size_t>(width) * height * 3, 255) {}

  int width() const { return w_; }
  int height() const { return h_; }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    std::uint8_t* p = &px_[(static_cast<std::size_t>(y) * w_ + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  void fill(int x0, int y0, int x1, int y1, Rgb c) {  // inclusive corners, any order
    if (x0 > x1) std::swap(x0, x1);
    if (y0 > y1) std::swap(y0, y1);
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  void line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1) {
    // Bresenham; thickness by drawing a small square at each step.
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      fill(x0 - thickness / 2, y0 - thickness / 2, x0 + (thickness - 1) / 2, y0 + (thickness - 1) / 2, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void dashed_hline(int x0, int x1, int y, Rgb c) {
    for (int x = x0; x <= x1; ++x)
      if ((x - x0) % 8 < 5) set(x, y, c);
  }

  static int text_width(const std::string& s, int scale = 1) {
    return s.empty() ? 0 : (static_cast<int>(s.size()) * font::kAdvance - 1) * scale;
  }
  // Top-left corner at (x, y).
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1) {
    for (char ch : s) {
      const std::uint8_t* g = font::glyph(ch);
      for (int row = 0; row < font::kGlyphHeight; ++row)
        for (int col = 0; col < font::kGlyphWidth; ++col)
          if (g[row] & (0x10 >> col))
            fill(x + col * scale, y + row * scale, x + col * scale + scale - 1, y + row * scale + scale - 1,
                 c);
      x += font::kAdvance * scale;
    }
  }
  // Rotated 90 degrees counter-clockwise (reads bottom to top); (x, y) is the bottom-left
  // of the first glyph, so the string extends upwards from y.
  void text_up(int x, int y, const std::string& s, Rgb c) {
    for (char ch : s) {
      const std::uint8_t* g = font::glyph(ch);
      for (int row = 0; row < font::kGlyphHeight; ++row)
        for (int col = 0; col < font::kGlyphWidth; ++col)
          if (g[row] & (0x10 >> col)) set(x + row, y - col, c);
      y -= font::kAdvance;
    }
  }

  Image to_image() const {
    Image im;
    im.channels = 3;
    im.height = h_;
    im.width = w_;
    im.pixels.resize(px_.size());
    const std::size_t plane = static_cast<std::size_t>(w_) * h_;
    for (std::size_t i = 0; i < plane; ++i)
      for (int c = 0; c < 3; ++c) im.pixels[c * plane + i] = px_[i * 3 + c];
    return im;
  }

 private:
  int w_, h_;
  std::vector<std::uint8_t> px_;
};

// `digits` significant digits without an exponent for ordinary magnitudes
// (1234 -> "1234", 4.8 -> "4.8", 0.05 -> "0.05"); %g beyond that.
std::string format_value(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  digits = std::clamp(digits, 1, 12);
  char buf[48];
  const double mag = std::abs(v);
  if (mag >= 1 && mag < 1e7) {
    const int int_digits = static_cast<int>(std::floor(std::log10(mag))) + 1;
    std::snprintf(buf, sizeof buf, "%.*f", std::max(0, digits - int_digits), v);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
      s.erase(s.find_last_not_of('0') + 1);
      if (s.back() == '.') s.pop_back();
    }
    return s;
  }
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

// Tick labels with as many decimals as the step needs (0.25 -> 2).
std::string format_tick(double v, double step) {
  char buf[32];
  if (std::abs(v) >= 1e6 || step < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return buf;
}

// Tick step 1, 2 or 5 x 10^k giving about `target` intervals over `range`.
double nice_step(double range, int target = 5) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

std::string shorten(const std::string& s, std::size_t max_chars) {
  return s.size() <= max_chars ? s : s.substr(0, max_chars - 1) + "~";
}

constexpr int kPlotHeight = 250;  // the axes area of one panel
constexpr int kTitleBand = 36;    // title (scale 2) and gap above the axes
constexpr int kMaxLabelChars = 28;

// Height a panel needs below its axes for the category labels.
int label_band(const BarPanel& p, int plot_width, bool& vertical) {
  const int slot = plot_width / static_cast<int>(p.values.size());
  std::size_t longest = 0;
  for (const auto& l : p.labels) longest = std::max(longest, l.size());
  vertical = Canvas::text_width(std::string(longest, 'x')) > slot - 4;
  if (!vertical) return 20;
  return static_cast<int>(std::min<std::size_t>(longest, kMaxLabelChars)) * font::kAdvance + 14;
}

struct Layout {
  int left, right, plot_width;
};

void draw_panel(Canvas& cv, const BarPanel& p, int top, const Layout& lay, Rgb colour) {
  const int n = static_cast<int>(p.values.size());
  const int x0 = lay.left, x1 = lay.left + lay.plot_width;
  const int y_top = top + kTitleBand, y_bottom = y_top + kPlotHeight;

  cv.text(std::max(4, (cv.width() - Canvas::text_width(p.title, 2)) / 2), top + 8, p.title, kBlack, 2);

  // Value range: always include 0 (bars grow from it) and the reference line.
  double lo = 0, hi = 0;
  for (double v : p.values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (std::isfinite(p.reference)) lo = std::min(lo, p.reference), hi = std::max(hi, p.reference);
  if (hi - lo <= 0) hi = lo + 1;
  const double step = nice_step(hi - lo);
  lo = std::floor(lo / step) * step;
  double top_value = std::ceil(hi / step) * step;
  // Headroom for the value label above the tallest bar.
  if (top_value - hi < 0.08 * (top_value - lo)) top_value += step;
  auto to_y = [&](double v) {
    return y_bottom - static_cast<int>(std::lround((v - lo) / (top_value - lo) * kPlotHeight));
  };

  // Grid, ticks and tick labels.
  for (int i = 0;; ++i) {
    const double v = lo + i * step;
    if (v > top_value + step * 1e-9) break;
    const int y = to_y(v);
    cv.line(x0 + 1, y, x1, y, kGrid);
    cv.line(x0 - 4, y, x0, y, kBlack);
    const std::string t = format_tick(v, step);
    cv.text(x0 - 7 - Canvas::text_width(t), y - font::kGlyphHeight / 2, t, kText);
  }
  cv.line(x0, y_top, x0, y_bottom, kBlack);
  cv.line(x0, to_y(0), x1, to_y(0), kBlack);
  if (!p.y_label.empty()) {
    const std::string yl = shorten(p.y_label, kPlotHeight / font::kAdvance);
    cv.text_up(6, y_top + (kPlotHeight + Canvas::text_width(yl)) / 2, yl, kText);
  }

  bool vertical = false;
  label_band(p, lay.plot_width, vertical);
  const double slot = static_cast<double>(lay.plot_width) / n;
  const int bar_half = std::max(1, static_cast<int>(slot * 0.35));
  int prev_x = -1, prev_y = -1;
  for (int i = 0; i < n; ++i) {
    const int cx = x0 + static_cast<int>((i + 0.5) * slot);
    const double v = p.values[i];
    const std::string value_text = format_value(v, p.value_digits);
    int label_y = y_bottom - 12;  // where the value label goes (n/a sits on the axis)
    if (std::isfinite(v)) {
      const int y = to_y(v);
      if (p.style == BarPanel::Style::kBars) {
        cv.fill(cx - bar_half, to_y(0), cx + bar_half, y, colour);
      } else {
        if (prev_x >= 0) cv.line(prev_x, prev_y, cx, y, colour, 2);
        cv.fill(cx - 3, y - 3, cx + 3, y + 3, colour);
        prev_x = cx;
        prev_y = y;
      }
      label_y = (v >= 0 ? y : to_y(0)) - 11;
    } else {
      prev_x = -1;  // a gap in the line
    }
    if (Canvas::text_width(value_text) <= slot - 2)
      cv.text(cx - Canvas::text_width(value_text) / 2, label_y, value_text, kText);
    const std::string label = shorten(p.labels[i], kMaxLabelChars);
    if (vertical)
      cv.text_up(cx - font::kGlyphHeight / 2, y_bottom + 6 + Canvas::text_width(label), label, kText);
    else
      cv.text(cx - Canvas::text_width(label) / 2, y_bottom + 6, label, kText);
  }
  if (std::isfinite(p.reference)) {
    const int y = to_y(p.reference);
    cv.dashed_hline(x0 + 1, x1, y, kReference);
    if (!p.reference_label.empty())
      cv.text(x1 - Canvas::text_width(p.reference_label), y - 10, p.reference_label, kReference);
  }
}

}  // namespace

Image render_panels(const std::vector<BarPanel>& panels, int width) {
  VEIL_REQUIRE(!panels.empty(), "render_panels: no panels");
  VEIL_REQUIRE(width >= 320 && width <= 8192, "render_panels: width " << width << " outside 320..8192");
  // Left margin fits the widest tick label of any panel plus the vertical y label.
  Layout lay{};
  lay.right = 16;
  lay.left = 22 + 8 * font::kAdvance + 8;  // y label, up to 8 tick characters, tick marks
  lay.plot_width = width - lay.left - lay.right;
  int height = 0;
  std::vector<int> bands;
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const BarPanel& p = panels[i];
    VEIL_REQUIRE(!p.values.empty(), "render_panels: panel " << i << " (\"" << p.title << "\") has no values");
    VEIL_REQUIRE(p.labels.size() == p.values.size(), "render_panels: panel "
                                                         << i << " has " << p.labels.size() << " labels but "
                                                         << p.values.size() << " values");
    VEIL_REQUIRE(static_cast<int>(p.values.size()) <= lay.plot_width / 2,
                 "render_panels: panel " << i << " has too many values (" << p.values.size() << ") for width "
                                         << width);
    bool vertical = false;
    bands.push_back(label_band(p, lay.plot_width, vertical));
    height += kTitleBand + kPlotHeight + bands.back() + 10;
  }
  Canvas cv(width, height);
  int top = 0;
  for (std::size_t i = 0; i < panels.size(); ++i) {
    draw_panel(cv, panels[i], top, lay, kSeries[i % std::size(kSeries)]);
    top += kTitleBand + kPlotHeight + bands[i] + 10;
  }
  return cv.to_image();
}

void write_panels_png(const std::string& path, const std::vector<BarPanel>& panels, int width) {
  data::save_png(path, render_panels(panels, width));
}

void write_bar_chart_png(const std::string& path, const std::string& title,
                         const std::vector<std::string>& labels, const std::vector<double>& values,
                         const std::string& y_label) {
  BarPanel p;
  p.title = title;
  p.y_label = y_label;
  p.labels = labels;
  p.values = values;
  write_panels_png(path, {p});
}

void write_two_panel_png(const std::string& path, const std::vector<std::string>& stages,
                         const std::vector<double>& seconds, const std::vector<double>& precision_bits,
                         const std::string& title) {
  const std::string prefix = title.empty() ? "" : title + ": ";
  BarPanel time;
  time.title = prefix + "time per stage";
  time.y_label = "seconds";
  time.labels = stages;
  time.values = seconds;
  BarPanel precision;
  precision.title = prefix + "precision per stage";
  precision.y_label = "bits";
  precision.labels = stages;
  precision.values = precision_bits;
  precision.style = BarPanel::Style::kLine;
  precision.value_digits = 3;
  write_panels_png(path, {time, precision});
}

}  // namespace veil::report
