#include "eval/plot_svg.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/svg_file.h"

namespace tqlm {

namespace {
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// About 5 round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart).
std::vector<double> nice_ticks(double lo, double hi) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / 5, mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5   ? mag
                      : raw / mag < 3.5 ? 2 * mag
                      : raw / mag < 7.5 ? 5 * mag
                                        : 10 * mag;
  std::vector<double> t;
  const double first = std::floor(lo / step) * step, last = std::ceil(hi / step) * step;
  for (int i = 0; first + i * step <= last + step * 1e-9 && i < 50; ++i) t.push_back(first + i * step);
  return t;
}

std::string num(double v) {
  if (v != 0 && (std::abs(v) >= 1e6 || std::abs(v) < 1e-3)) return fmt::format("{:.3g}", v);
  return fmt::format("{:g}", std::round(v * 1000) / 1000);
}
}  // namespace

std::string plot_svg(const Plot& p) {
  size_t longest = 0;  // legend names: ~7 px per character
  for (const auto& ser : p.series) longest = std::max(longest, ser.name.size());
  const int R = std::max(170, 44 + 7 * int(longest)), W = 470 + R, H = 400, L = 78, T = 44, B = 52,
            pw = W - L - R, ph = H - T - B;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto fx = [&](double x) { return p.log2_x ? std::log2(std::max(x, 1e-12)) : x; };
  for (const auto& s : p.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) {
        x0 = std::min(x0, fx(x)), x1 = std::max(x1, fx(x));
        y0 = std::min(y0, y), y1 = std::max(y1, y);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (p.y_from_zero) y0 = std::min(y0, 0.0);
  const std::vector<double> yt =
      nice_ticks(p.y_from_zero && y0 >= 0 ? y0 : y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0));
  y0 = yt.front(), y1 = yt.back();
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.04 * (x1 - x0);
  x0 -= pad, x1 += pad;
  auto px = [&](double x) { return L + (fx(x) - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return T + ph - (y - y0) / (y1 - y0) * ph; };

  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H, W, H);
  s += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\" font-weight=\"bold\">{}</text>\n", L,
                   xml_escape(p.title));
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", L,
                   T, pw, ph);
  for (double v : yt) {
    const double y = py(v);
    s += fmt::format(
        "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        L, y, L + pw, y, L - 6, y + 4, num(v));
  }
  std::vector<double> xt;
  if (p.log2_x) {
    for (double e = std::ceil(x0); e <= x1; e += 1) xt.push_back(std::exp2(e));
    while (xt.size() > 8) {  // every other power of two
      std::vector<double> half;
      for (size_t i = 0; i < xt.size(); i += 2) half.push_back(xt[i]);
      xt = half;
    }
  } else {
    for (double v : nice_ticks(x0, x1))
      if (v >= x0 && v <= x1) xt.push_back(v);
  }
  for (double v : xt) {
    const double x = px(v);
    s += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        x, T, x, T + ph, x, T + ph + 16, num(v));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", L + pw / 2, H - 12,
                   xml_escape(p.x_name));
  s += fmt::format(
      "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{}</text>\n",
      T + ph / 2, T + ph / 2, xml_escape(p.y_name));
  for (size_t i = 0; i < p.series.size(); ++i) {
    const PlotSeries& ser = p.series[i];
    const char* c = kColours[i % std::size(kColours)];
    std::string pts;
    for (const auto& [x, y] : ser.points)
      if (std::isfinite(x) && std::isfinite(y)) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    if (p.lines && !pts.empty())
      s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", pts, c);
    for (size_t k = 0; k < ser.points.size(); ++k) {
      const auto [x, y] = ser.points[k];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n", px(x), py(y), c);
      if (k < ser.labels.size() && !ser.labels[k].empty())
        s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", px(x) + 6, py(y) - 6,
                         xml_escape(ser.labels[k]));
    }
    const int ly = T + 10 + int(i) * 20;
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{}\">{}</text>\n",
        L + pw + 14, ly - 2, c, L + pw + 34, ly + 4, xml_escape(ser.name));
  }
  return s + "</svg>\n";
}

}  // namespace tqlm
