#include <cerrno>
#include <climits>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace tqlm::cli {
namespace {

std::string read_all(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  return read_text_file(path, "--file");  // a FIFO or device is refused by name
}

// Ids as a JSON array or separated by whitespace/commas.
std::vector<int32_t> parse_ids(const std::string& s, const std::string& where) {
  std::vector<int32_t> ids;
  const size_t first = s.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && s[first] == '[') {
    const auto j = parse_json_limited<nlohmann::json>(s, where);
    if (!j.is_array()) fail("{}: not a JSON array of ids", where);
    for (size_t i = 0; i < j.size(); ++i)  // ids beyond 32 bits are errors, never wrapped
      ids.push_back(int32_t(json_int(j[i], fmt::format("{}: id [{}]", where, i), 0, INT32_MAX)));
    return ids;
  }
  std::string tok;
  std::string norm = s;
  for (char& c : norm) c = c == ',' ? ' ' : c;
  std::istringstream words(norm);
  while (words >> tok) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(tok.c_str(), &end, 10);
    if (*end != '\0' || tok.empty()) fail("{}: not an integer id: '{}'", where, tok);
    if (errno == ERANGE || v < 0 || v > INT32_MAX)
      fail("{}: id '{}' is out of range [0, {}]", where, tok, INT32_MAX);
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

}  // namespace

void add_tokenize(CLI::App& app) {
  struct Opts {
    std::string model, text, file;
    bool add_special = false, json = false, decode = false, skip_special = false, pieces = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize",
                                 "Encode text to token ids (or decode ids with --decode) using a "
                                 "model's tokenizer.json");
  cmd->add_option("model", o->model, "Model directory containing tokenizer.json, or a tokenizer.json file")
      ->required();
  auto* text = cmd->add_option("--text", o->text, "Input text (with --decode: ids)");
  auto* file = cmd->add_option("--file", o->file, "Read the input from FILE ('-' for stdin)");
  text->excludes(file);
  cmd->add_flag("--add-special-tokens", o->add_special, "Add the post-processor's special tokens (e.g. BOS)");
  cmd->add_flag("--json", o->json, "Print a JSON array of ids (with --decode: a JSON string)");
  cmd->add_flag("--decode", o->decode,
                "Read ids (JSON array or whitespace/comma separated) and print the text");
  cmd->add_flag("--skip-special-tokens", o->skip_special, "With --decode: leave special tokens out");
  cmd->add_flag("--pieces", o->pieces, "Print the pre-tokenized pieces as a JSON array instead of ids");
  cmd->callback([o, text, file] {
    if (!*text && !*file) fail("tokenize: give --text TEXT or --file FILE");
    const Tokenizer tok = Tokenizer::from_file(o->model);
    const std::string input = *text ? o->text : read_all(o->file);
    const std::string where = *text ? std::string("--text") : o->file;
    if (o->decode) {
      const std::string s =
          tok.decode(parse_ids(input, where), o->skip_special);  // unknown ids skipped, as HF
      if (o->json)
        std::printf("%s\n", nlohmann::json(s).dump().c_str());
      else
        std::fwrite(s.data(), 1, s.size(), stdout);
      return;
    }
    if (o->pieces) {
      std::printf("%s\n", nlohmann::json(tok.pieces(input)).dump().c_str());
      return;
    }
    const std::vector<int32_t> ids = tok.encode(input, o->add_special);
    if (o->json) {
      std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    } else {
      std::string out;
      out.reserve(ids.size() * 6);
      for (int32_t id : ids) out += std::to_string(id) + "\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
  });
}

}  // namespace tqlm::cli
