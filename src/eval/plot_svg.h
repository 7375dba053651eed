// Line charts as self-contained SVG (no plotting library at run time): named series of (x, y) points with
// markers, linear or log2 x axis, automatic "nice" ticks, a legend. Used by `tqlm report`.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tqlm {

struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in this order
  std::vector<std::string> labels;                // optional text beside each point
};

struct Plot {
  std::string title, x_name, y_name;
  bool log2_x = false;
  bool lines = true;         // false: markers only
  bool y_from_zero = false;  // the y axis starts at 0 (amounts such as bytes or tokens/s)
  std::vector<PlotSeries> series;
};

std::string plot_svg(const Plot& p);

}  // namespace tqlm
