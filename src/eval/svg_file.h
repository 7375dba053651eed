// Writing the evaluation tools' pictures: XML text escaping for the SVG builders, and an SVG file written
// atomically with a PNG beside it where rsvg-convert (librsvg2-bin) is installed.
#pragma once

#include <string>

namespace tqlm {

std::string xml_escape(const std::string& s);

// Writes `svg` to `svg_path` (temp name, then rename; `what` names the file in errors) and, when
// rsvg-convert exists, the PNG beside it (x.svg -> x.png). Returns the PNG's path, or "" when none was
// written (no converter, a path it cannot quote, or the converter failed: a note on stderr).
std::string write_svg_and_png(const std::string& svg_path, const std::string& svg, const char* what);

}  // namespace tqlm
