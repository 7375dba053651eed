// Durability steps of an atomic write: fsync of a file and of its directory before the final rename.
// (Checking that a path is a regular file: core/mapped_file.h.)
#pragma once

#include <string>

namespace tqlm {

// fsync of a file or directory by path; fails naming it.
void fsync_path(const std::string& path);

// Writes `data` to PATH.tmp-PID, syncs it, renames it to `path` and syncs the directory; on any error the
// temporary file is removed and the message names `what` and the path. `path` is never half-written.
void write_file_atomic(const std::string& path, const std::string& data, const std::string& what);

// `name` as one safe file-name component: every character outside [A-Za-z0-9._-] becomes '_' (a ':' or '/'
// from a KV mode or a policy path), at most `max_len` characters.
std::string safe_file_name(const std::string& name, size_t max_len = std::string::npos);

}  // namespace tqlm
