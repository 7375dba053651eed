// Durability steps of an atomic write: fsync of a file and of its directory before the final rename.
// (Checking that a path is a regular file: core/mapped_file.h.)
#pragma once

#include <string>

namespace tqlm {

// fsync of a file or directory by path; fails naming it.
void fsync_path(const std::string& path);

}  // namespace tqlm
