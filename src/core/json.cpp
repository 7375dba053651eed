// Nesting pre-scan for untrusted JSON and the whole-file reader used before parsing it.
#include "core/json.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace tqlm {

void check_json_depth(std::string_view text, std::string_view what, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t k = 0; k < text.size(); ++k) {
    char c = text[k];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        fail("{}: JSON nested deeper than the limit kMaxJsonDepth = {} (at byte {})", what, max_depth, k);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

std::string read_text_file(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot read {} {}: no such file", what, path);
  if (!S_ISREG(st.st_mode)) fail("cannot read {} {}: not a regular file", what, path);
  if (static_cast<uint64_t>(st.st_size) > kMaxTextFileBytes)
    fail("{} {} is {} bytes, over the limit kMaxTextFileBytes = {}", what, path, st.st_size,
         kMaxTextFileBytes);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read {} {}", what, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace tqlm
