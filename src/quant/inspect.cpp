#include "quant/inspect.h"

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <map>

namespace tqlm {

namespace {
std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = char(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string join(const std::set<std::string>& s) {
  // numbers first in numeric order, then dtype names
  std::vector<std::string> v(s.begin(), s.end());
  std::stable_sort(v.begin(), v.end(), [](const std::string& a, const std::string& b) {
    bool na = std::isdigit(static_cast<unsigned char>(a[0])),
         nb = std::isdigit(static_cast<unsigned char>(b[0]));
    if (na != nb) return na;
    if (na) return std::stoi(a) < std::stoi(b);
    return a < b;
  });
  std::string r;
  for (const auto& x : v) {
    if (!r.empty()) r += ',';
    r += x;
  }
  return r.empty() ? "-" : r;
}

std::string join(const std::set<int>& s) {
  std::string r;
  for (int x : s) {
    if (!r.empty()) r += ',';
    r += std::to_string(x);
  }
  return r.empty() ? "-" : r;
}

void add(RoleStats& into, const RoleStats& m) {
  into.tensors += m.tensors;
  into.params += m.params;
  into.bytes += m.bytes;
  into.formats.insert(m.formats.begin(), m.formats.end());
  into.group_sizes.insert(m.group_sizes.begin(), m.group_sizes.end());
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", double(n) / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", double(n) / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", double(n) / 1e3);
  return std::to_string(n);
}
}  // namespace

InspectReport inspect_checkpoint(const Checkpoint& ck) {
  InspectReport rep;
  rep.path = ck.path();
  rep.model_type = ck.model_type();
  rep.shards = ck.tensors().shard_paths().size();
  // Group tensors by module path (x.weight, x.scales, x.biases, x.bias -> x).
  std::map<std::string, std::vector<const TensorView*>> modules;
  for (const TensorView* t : ck.tensors().all()) modules[module_path(t->name)].push_back(t);

  std::vector<RoleStats> per_role(kNumRoles);
  for (int i = 0; i < kNumRoles; ++i) per_role[size_t(i)].role = Role(i);
  for (const auto& [mod, tensors] : modules) {
    RoleStats m;
    for (const TensorView* t : tensors) {
      m.tensors += 1;
      m.bytes += t->nbytes;
    }
    if (ck.is_quantized(mod) && ck.tensors().has(mod + ".weight")) {
      QuantizedWeight q = ck.quantized(mod);
      m.params = shape_numel(q.logical_shape);
      if (const TensorView* b = ck.tensors().find(mod + ".bias")) m.params += b->numel();
      m.formats.insert(std::to_string(q.bits));
      m.group_sizes.insert(q.group_size);
    } else {
      for (const TensorView* t : tensors) {
        if (t->name == mod + ".weight_scale_inv") continue;  // block scales of an FP8 weight: not parameters
        m.params += t->numel();
        m.formats.insert(lower(dtype_name(t->dtype)));
      }
    }
    add(per_role[size_t(classify_tensor(mod).role)], m);
  }
  for (auto& r : per_role)
    if (r.tensors) {
      add(rep.total, r);
      rep.roles.push_back(r);
    }
  return rep;
}

std::string format_inspect_table(const InspectReport& r) {
  std::string out =
      fmt::format("{}  (model_type: {}, {} shard{})\n", r.path, r.model_type.empty() ? "?" : r.model_type,
                  r.shards, r.shards == 1 ? "" : "s");
  out += fmt::format("{:<12} {:>8} {:>10} {:>16} {:>10} {:>14} {:>12} {:>7}\n", "role", "tensors", "params",
                     "bits", "group", "bytes", "size", "bpw");
  auto row = [&](std::string_view name, const RoleStats& s) {
    out += fmt::format("{:<12} {:>8} {:>10} {:>16} {:>10} {:>14} {:>12} {:>7.3f}\n", name, s.tensors,
                       human_count(s.params), join(s.formats), join(s.group_sizes), s.bytes,
                       human_bytes(s.bytes), s.bpw());
  };
  for (const auto& s : r.roles) row(role_name(s.role), s);
  out += std::string(96, '-') + "\n";
  row("total", r.total);
  out += fmt::format("total parameters: {} ({}), bytes: {} ({}), bits per weight: {:.3f}\n", r.total.params,
                     human_count(r.total.params), r.total.bytes, human_bytes(r.total.bytes), r.total.bpw());
  return out;
}

nlohmann::json inspect_to_json(const InspectReport& r) {
  auto one = [](const RoleStats& s) {
    return nlohmann::json{{"tensors", s.tensors},
                          {"params", s.params},
                          {"bits", std::vector<std::string>(s.formats.begin(), s.formats.end())},
                          {"group_sizes", std::vector<int>(s.group_sizes.begin(), s.group_sizes.end())},
                          {"bytes", s.bytes},
                          {"bpw", s.bpw()}};
  };
  nlohmann::json j;
  j["path"] = r.path;
  j["model_type"] = r.model_type;
  j["shards"] = r.shards;
  j["roles"] = nlohmann::json::object();
  for (const auto& s : r.roles) j["roles"][std::string(role_name(s.role))] = one(s);
  j["total"] = one(r.total);
  return j;
}

}  // namespace tqlm
