// Small PNG charts for the evaluation report: stacked panels of bar (or line) charts with
// a title, y-axis ticks, per-bar value labels and category labels, drawn with our own
// bitmap font and written through libpng. No plotting library needed on the machines
// that run the encrypted evaluation.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "veil/data/image.hpp"

namespace veil::report {

// Plots render into the data library's RGB image type and PNG writer.
using data::Image;

struct BarPanel {
  enum class Style { kBars, kLine };

  std::string title, y_label;
  std::vector<std::string> labels;  // one per value (e.g. stage names)
  std::vector<double> values;       // non-finite values are drawn as "n/a"
  Style style = Style::kBars;
  // Optional dashed horizontal line (e.g. the precision a stage must keep); NaN: none.
  double reference = std::numeric_limits<double>::quiet_NaN();
  std::string reference_label;
  int value_digits = 3;  // significant digits of the value labels
};

// Renders the panels one above the other into an RGB image `width` pixels wide (each
// panel about 330 pixels high plus room for its category labels). Long labels are turned
// vertical and shortened with '~' past 28 characters. Throws std::invalid_argument when a
// panel's labels and values differ in length, a panel is empty, or width is outside
// 320..8192.
Image render_panels(const std::vector<BarPanel>& panels, int width = 900);

// render_panels, then save_png.
void write_panels_png(const std::string& path, const std::vector<BarPanel>& panels, int width = 900);

// One bar chart.
void write_bar_chart_png(const std::string& path, const std::string& title,
                         const std::vector<std::string>& labels, const std::vector<double>& values,
                         const std::string& y_label);

// The evaluation report figure: seconds per stage (bars) above precision in bits per
// stage (line). `title` prefixes both panel titles (e.g. the model name).
void write_two_panel_png(const std::string& path, const std::vector<std::string>& stages,
                         const std::vector<double>& seconds, const std::vector<double>& precision_bits,
                         const std::string& title = "");

}  // namespace veil::report
