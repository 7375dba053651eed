// CSV files (RFC 4180: quoted fields, doubled quotes, newlines inside quotes) read with libcsv in strict
// mode. Every size has a limit that ends in an error naming the file: the file's bytes, fields per row, rows,
// and the bytes of one field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tqlm {

struct CsvLimits {
  uint64_t max_file_bytes = uint64_t(256) << 20;
  int64_t max_rows = 10'000'000;
  int64_t max_fields = 1024;  // per row
  uint64_t max_field_bytes = 1 << 20;
};

// Rows of the file, each a list of fields (the header, if any, is row 0). `label` names the file's role.
std::vector<std::vector<std::string>> read_csv(const std::string& path, const std::string& label,
                                               const CsvLimits& limits = {});
// The same over bytes already in memory (`name` is used in errors).
std::vector<std::vector<std::string>> parse_csv(const std::string& bytes, const std::string& name,
                                                const CsvLimits& limits = {});

}  // namespace tqlm
