#include "eval/csv_table.h"

#include <csv.h>

#include "core/error.h"
#include "core/json.h"

namespace tqlm {

namespace {
struct Sink {
  const CsvLimits& lim;
  const std::string& name;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string error;  // set by a callback (callbacks cannot throw through C)
};

void on_field(void* data, size_t len, void* ctx) {
  Sink& s = *static_cast<Sink*>(ctx);
  if (!s.error.empty()) return;
  if (len > s.lim.max_field_bytes)
    s.error = fmt::format("a field of {} bytes in row {} (limit {})", len, s.rows.size() + 1,
                          s.lim.max_field_bytes);
  else if (int64_t(s.row.size()) >= s.lim.max_fields)
    s.error = fmt::format("row {} has more than {} fields", s.rows.size() + 1, s.lim.max_fields);
  else
    s.row.emplace_back(static_cast<const char*>(data), len);
}

void on_row(int, void* ctx) {
  Sink& s = *static_cast<Sink*>(ctx);
  if (!s.error.empty()) return;
  if (int64_t(s.rows.size()) >= s.lim.max_rows)
    s.error = fmt::format("more than {} rows", s.lim.max_rows);
  else
    s.rows.push_back(std::move(s.row));
  s.row.clear();
}
}  // namespace

std::vector<std::vector<std::string>> parse_csv(const std::string& bytes, const std::string& name,
                                                const CsvLimits& limits) {
  if (bytes.size() > limits.max_file_bytes)
    fail("{}: {} bytes, more than the limit of {} for a CSV file", name, bytes.size(), limits.max_file_bytes);
  csv_parser p;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) fail("{}: cannot start the CSV parser", name);
  csv_set_space_func(&p, [](unsigned char) { return 0; });  // keep spaces around fields (libcsv trims them)
  Sink sink{limits, name, {}, {}, {}};
  const size_t n = csv_parse(&p, bytes.data(), bytes.size(), on_field, on_row, &sink);
  const bool parse_error = n != bytes.size();
  const bool fini_error = !parse_error && csv_fini(&p, on_field, on_row, &sink) != 0;
  const std::string why = parse_error || fini_error ? csv_strerror(csv_error(&p)) : "";
  csv_free(&p);
  if (parse_error) fail("{}: not valid CSV at byte {}: {}", name, n, why);
  if (fini_error) fail("{}: not valid CSV at the end of the file: {}", name, why);
  if (!sink.error.empty()) fail("{}: {}", name, sink.error);
  return std::move(sink.rows);
}

std::vector<std::vector<std::string>> read_csv(const std::string& path, const std::string& label,
                                               const CsvLimits& limits) {
  return parse_csv(read_text_file(path, label), path, limits);
}

}  // namespace tqlm
