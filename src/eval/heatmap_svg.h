// A heatmap as a self-contained SVG: rows x columns of cells coloured from red (0) through yellow to green
// (1), each with its text, row and column labels, a title and axis names. Used for the NIAH grid.
#pragma once

#include <string>
#include <vector>

namespace tqlm {

struct Heatmap {
  std::string title, subtitle, x_name, y_name;
  std::vector<std::string> cols, rows;         // labels
  std::vector<std::vector<double>> values;     // [rows][cols] in [0, 1]; NaN: empty cell
  std::vector<std::vector<std::string>> text;  // [rows][cols] shown in the cell
};

std::string heatmap_svg(const Heatmap& h);

}  // namespace tqlm
