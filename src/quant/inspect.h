// Per-role size report of a checkpoint (what `tqlm inspect` prints).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "quant/roles.h"

namespace tqlm {

struct RoleStats {
  Role role = Role::other;
  int64_t tensors = 0;
  int64_t params = 0;             // logical (unquantized) parameter count
  uint64_t bytes = 0;             // bytes stored in the files, scales/biases included
  std::set<std::string> formats;  // "4" (affine bits) or a dtype like "bf16"
  std::set<int> group_sizes;
  double bpw() const { return params ? double(bytes) * 8.0 / double(params) : 0.0; }
};

struct InspectReport {
  std::string path, model_type;
  std::vector<RoleStats> roles;  // roles present, in Role order
  RoleStats total;
  size_t shards = 0;
};

InspectReport inspect_checkpoint(const Checkpoint& ck);
std::string format_inspect_table(const InspectReport& r);
nlohmann::json inspect_to_json(const InspectReport& r);

}  // namespace tqlm
