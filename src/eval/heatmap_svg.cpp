#include "eval/heatmap_svg.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/svg_file.h"

namespace tqlm {

namespace {

// red (0) -> yellow (0.5) -> green (1)
std::string colour(double v) {
  if (!std::isfinite(v)) return "#eeeeee";
  v = std::clamp(v, 0.0, 1.0);
  const double r = v < 0.5 ? 230 : 230 - (v - 0.5) * 2 * (230 - 60);
  const double g = v < 0.5 ? 70 + v * 2 * (200 - 70) : 200 - (v - 0.5) * 2 * (200 - 170);
  const double b = v < 0.5 ? 60 : 60 + (v - 0.5) * 2 * (90 - 60);
  return fmt::format("#{:02x}{:02x}{:02x}", int(r), int(g), int(b));
}
}  // namespace

std::string heatmap_svg(const Heatmap& h) {
  const int cw = 72, ch = 34, left = 90, top = 72, nr = int(h.rows.size()), nc = int(h.cols.size());
  // ~9.5 px per character of the 15 px bold title, ~7 px of the 12 px subtitle
  const int title_w = std::max(int(h.title.size()) * 19 / 2, int(h.subtitle.size()) * 7) + 20;
  const int width = std::max(left + nc * cw + 20, title_w), height = top + nr * ch + 48;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height, width, height);
  s += fmt::format("<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n", 10,
                   xml_escape(h.title));
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + nc * cw / 2,
                   height - 10, xml_escape(h.x_name));
  s += fmt::format(
      "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">{}</text>\n",
      top + nr * ch / 2, top + nr * ch / 2, xml_escape(h.y_name));
  for (int c = 0; c < nc; ++c)
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + c * cw + cw / 2,
                     top - 8, xml_escape(h.cols[size_t(c)]));
  for (int r = 0; r < nr; ++r) {
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 8,
                     top + r * ch + ch / 2 + 5, xml_escape(h.rows[size_t(r)]));
    for (int c = 0; c < nc; ++c) {
      const double v = size_t(r) < h.values.size() && size_t(c) < h.values[size_t(r)].size()
                           ? h.values[size_t(r)][size_t(c)]
                           : NAN;
      const std::string t = size_t(r) < h.text.size() && size_t(c) < h.text[size_t(r)].size()
                                ? h.text[size_t(r)][size_t(c)]
                                : "";
      s += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"white\" "
          "stroke-width=\"2\"/>"
          "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
          left + c * cw, top + r * ch, cw, ch, colour(v), left + c * cw + cw / 2, top + r * ch + ch / 2 + 5,
          xml_escape(t));
    }
  }
  return s + "</svg>\n";
}

}  // namespace tqlm
