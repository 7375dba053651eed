#include "eval/svg_file.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "core/files.h"

namespace tqlm {

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string write_svg_and_png(const std::string& svg_path, const std::string& svg, const char* what) {
  write_file_atomic(svg_path, svg, what);
  if (std::system("command -v rsvg-convert > /dev/null 2>&1") != 0) return "";
  const bool dot_svg = svg_path.size() > 4 && svg_path.compare(svg_path.size() - 4, 4, ".svg") == 0;
  const std::string png = dot_svg ? svg_path.substr(0, svg_path.size() - 4) + ".png" : svg_path + ".png";
  const std::string cmd =
      fmt::format("rsvg-convert -o '{}.tmp' '{}' && mv '{}.tmp' '{}'", png, svg_path, png, png);
  if (svg_path.find('\'') == std::string::npos && std::system(cmd.c_str()) == 0) return png;
  std::fprintf(stderr, "tqlm: rsvg-convert could not write %s (the SVG is there)\n", png.c_str());
  return "";
}

}  // namespace tqlm
