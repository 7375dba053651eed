#include "tokenizer/tokenizer_post.h"

#include "tokenizer/tokenizer_json.h"

namespace tqlm {
namespace {

using tokjson::json;

void wrap(PostProcessor& p, const std::vector<int32_t>& before, const std::vector<int32_t>& after) {
  p.prefix.insert(p.prefix.begin(), before.begin(), before.end());
  p.suffix.insert(p.suffix.end(), after.begin(), after.end());
}

// BertProcessing / RobertaProcessing store ["token", id].
int32_t pair_id(const json& j, const char* key, const std::string& where) {
  const json& v = tokjson::req(j, key, where);
  if (!v.is_array() || v.size() != 2) fail("{}.{}: expected [token, id]", where, key);
  return v[1].get<int32_t>();
}

void apply(PostProcessor& p, const json& j, const std::string& where) {
  if (j.is_null()) return;
  const std::string type = tokjson::type_of(j, where);
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    wrap(p, {pair_id(j, "cls", where)}, {pair_id(j, "sep", where)});
    return;
  }
  if (type == "Sequence") {
    const json& list = tokjson::req(j, "processors", where);
    for (size_t i = 0; i < list.size(); ++i) apply(p, list[i], fmt::format("{}.processors[{}]", where, i));
    return;
  }
  if (type == "TemplateProcessing") {
    const json& single = tokjson::req(j, "single", where);
    const json& specials = tokjson::req(j, "special_tokens", where);
    std::vector<int32_t> before, after;
    bool seen_seq = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const json& item = single[i];
      if (item.contains("Sequence")) {
        seen_seq = true;
        continue;
      }
      if (!item.contains("SpecialToken")) fail("{}.single[{}]: expected Sequence or SpecialToken", where, i);
      const std::string name = tokjson::req_string(item["SpecialToken"], "id", where + ".single");
      if (!specials.contains(name)) fail("{}.special_tokens: missing '{}'", where, name);
      const json& ids = tokjson::req(specials[name], "ids", where + ".special_tokens." + name);
      for (const auto& id : ids) (seen_seq ? after : before).push_back(id.get<int32_t>());
    }
    wrap(p, before, after);
    return;
  }
  fail(
      "{}: unsupported post_processor type '{}' (supported: TemplateProcessing, BertProcessing, "
      "RobertaProcessing, ByteLevel, Sequence)",
      where, type);
}

}  // namespace

PostProcessor make_post_processor(const json& j, const std::string& where) {
  PostProcessor p;
  apply(p, j, where);
  return p;
}

}  // namespace tqlm
