// Calibration from a text file, shared by `tqlm calibrate` and `tqlm convert --calib`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "quant/calib.h"
#include "quant/calibrate.h"

namespace tqlm::cli {

struct CalibTextOptions {
  std::string data;    // UTF-8 text file
  double start = 0.0;  // the text's tokens from this fraction on (0.5: its second half)
  bool ids = false;    // data holds token ids (whitespace-separated integers), not text
  CalibrateOptions run;
  int threads = 0;
};

// --calib-ctx, --calib-windows, --calib-start, --calib-ids (prefix "calib-") or --ctx, --windows, --start,
// --ids (prefix "").
void add_calib_text_options(CLI::App* cmd, CalibTextOptions& o, const std::string& prefix);

// Loads `model`, tokenizes the text (no special tokens) or reads its ids, keeps tokens from `start`, runs
// calibrate().
CalibStats calibrate_text(const std::string& model, const CalibTextOptions& o);

}  // namespace tqlm::cli
