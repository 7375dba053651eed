// libFuzzer target: a quantization policy JSON file (`convert --policy FILE`): depth-limited parse,
// Policy::from_json (fields, roles, layer selectors, bits, group sizes, keep dtypes), then decisions for
// every role over a small and a large layer count. Any input must end in a Policy or a tqlm::Error. Input:
// the bytes of the policy file.
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "quant/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string label = "fuzz/policy.json";
  try {
    const auto j = tqlm::parse_json_limited<nlohmann::json>(
        std::string_view(reinterpret_cast<const char*>(data), size), label);
    tqlm::Policy p = tqlm::Policy::from_json(j, label);
    volatile int sink = 0;
    for (int n_layers : {1, 7, 1024})
      for (int r = 0; r < tqlm::kNumRoles; ++r)
        for (int layer : {-1, 0, 3, n_layers - 1}) {
          const auto d = p.decide(tqlm::Role(r), layer, n_layers, 4096, tqlm::DType::BF16);
          sink = sink + d.bits + d.group_size + d.rule;
          const auto e = p.decide(tqlm::Role(r), layer, n_layers, 96, tqlm::DType::F32);
          sink = sink + e.bits + e.group_size;
        }
    for (const auto& rule : p.rules)
      for (const auto& sel : rule.layers) sink = sink + int(sel.str().size());
    (void)sink;
  } catch (const tqlm::Error&) {
  }
  return 0;
}
