// Where evaluation data is found when no path is given: $TQLM_DATA (the file itself, or a directory holding
// `rel`), else ../shared/data/`rel` from the current directory, else from the repository that holds the
// executable (build/tqlm -> ../shared/data).
#pragma once

#include <string>

namespace tqlm {

// The first candidate that exists (a regular file; or, when `dir`, a directory holding test/, as MMLU), or
// "".
std::string default_data_path(const std::string& rel, bool dir);

}  // namespace tqlm
