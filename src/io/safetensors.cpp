#include "io/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"

namespace tqlm {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

namespace {

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Reads a non-negative integer that fits in int64 from a JSON value, or fails naming `what`.
uint64_t json_uint(const json& v, const std::string& label, const std::string& what) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) fail("{}: {} is too large", label, what);
    return u;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return uint64_t(v.get<int64_t>());
  fail("{}: {} must be a non-negative integer, got {}", label, what, v.dump());
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& label) {
  if (size < 8) fail("{}: truncated safetensors file ({} bytes, need at least 8)", label, size);
  uint64_t n = read_u64_le(data);
  if (n > kMaxSafetensorsHeader)
    fail("{}: header length {} exceeds the {} byte limit (corrupt file?)", label, n, kMaxSafetensorsHeader);
  if (n > size - 8)
    fail("{}: header length {} runs past the end of the file ({} bytes): truncated or corrupt", label, n,
         size);
  const char* hp = reinterpret_cast<const char*>(data + 8);
  json h;
  try {
    h = json::parse(hp, hp + n);
  } catch (const json::exception& e) {
    fail("{}: header is not valid JSON: {}", label, e.what());
  }
  if (!h.is_object()) fail("{}: header must be a JSON object", label);

  SafetensorsHeader out;
  const uint8_t* base = data + 8 + n;
  const uint64_t data_size = size - 8 - n;
  struct Span {
    uint64_t b, e;
    size_t i;
  };
  std::vector<Span> spans;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;  // mx.save_safetensors writes null when there is no metadata
      if (!v.is_object()) fail("{}: __metadata__ must be an object of strings", label);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("{}: __metadata__ value for '{}' must be a string", label, m.key());
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = fmt::format("{}: tensor '{}'", label, name);
    if (!v.is_object()) fail("{}: entry must be an object", where);
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) fail("{}: missing or non-string 'dtype'", where);
    if (sh == v.end() || !sh->is_array()) fail("{}: missing or non-array 'shape'", where);
    if (off == v.end() || !off->is_array() || off->size() != 2)
      fail("{}: 'data_offsets' must be an array [begin, end]", where);
    auto dtype = dtype_from_name(dt->get<std::string>());
    if (!dtype) fail("{}: unknown dtype '{}'", where, dt->get<std::string>());

    TensorView t;
    t.name = name;
    t.dtype = *dtype;
    unsigned __int128 numel = 1;
    for (size_t d = 0; d < sh->size(); ++d) {
      uint64_t dim = json_uint((*sh)[d], where, fmt::format("shape[{}]", d));
      t.shape.push_back(int64_t(dim));
      numel *= dim;
      if (numel > (unsigned __int128)(uint64_t(1) << 62))
        fail("{}: shape {} is absurdly large", where, sh->dump());
    }
    uint64_t b = json_uint((*off)[0], where, "data_offsets[0]");
    uint64_t e = json_uint((*off)[1], where, "data_offsets[1]");
    if (b > e) fail("{}: data_offsets [{}, {}] are reversed", where, b, e);
    if (e > data_size)
      fail("{}: data_offsets [{}, {}] run past the end of the data ({} bytes): truncated or corrupt file",
           where, b, e, data_size);
    unsigned __int128 want = numel * dtype_size(t.dtype);
    if (want != (unsigned __int128)(e - b))
      fail("{}: shape {} x {} needs {} bytes but data_offsets span {}", where, shape_str(t.shape),
           dtype_name(t.dtype), uint64_t(want), e - b);
    t.data = base + b;
    t.nbytes = size_t(e - b);
    spans.push_back({b, e, out.tensors.size()});
    out.tensors.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& x, const Span& y) { return x.b < y.b || (x.b == y.b && x.e < y.e); });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].b < spans[i - 1].e)
      fail("{}: tensors '{}' and '{}' overlap (bytes [{}, {}) and [{}, {}))", label,
           out.tensors[spans[i - 1].i].name, out.tensors[spans[i].i].name, spans[i - 1].b, spans[i - 1].e,
           spans[i].b, spans[i].e);
  }
  std::vector<TensorView> ordered;
  ordered.reserve(spans.size());
  for (const auto& s : spans) ordered.push_back(std::move(out.tensors[s.i]));
  out.tensors = std::move(ordered);
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(path), header_(parse_safetensors(file_.data(), file_.size(), path)) {}

SafetensorsIndex parse_safetensors_index(const std::string& text, const std::string& label) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", label, e.what());
  }
  if (!j.is_object()) fail("{}: must be a JSON object", label);
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) fail("{}: missing 'weight_map' object", label);
  SafetensorsIndex idx;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) fail("{}: weight_map['{}'] must be a file name string", label, it.key());
    std::string f = it.value().get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." ||
        f == "..")
      fail("{}: weight_map['{}'] = '{}' is not a plain file name", label, it.key(), f);
    idx.weight_map[it.key()] = f;
  }
  auto md = j.find("metadata");
  if (md != j.end() && md->is_object())
    for (auto it = md->begin(); it != md->end(); ++it)
      idx.metadata_numbers[it.key()] =
          it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
  return idx;
}

void TensorStore::add_file(const std::string& path, const NameFilter& want) {
  auto f = std::make_unique<SafetensorsFile>(path);
  if (want && std::none_of(f->tensors().begin(), f->tensors().end(),
                           [&](const TensorView& t) { return want(t.name); })) {
    for (const auto& t : f->tensors())
      if (index_.count(t.name) || !skipped_.insert(t.name).second)
        fail("tensor '{}' appears in two shards (the second: {})", t.name, path);
    return;  // unmapped when f goes out of scope
  }
  size_t fi = files_.size();
  for (size_t ti = 0; ti < f->tensors().size(); ++ti) {
    const auto& name = f->tensors()[ti].name;
    auto [it, inserted] = index_.emplace(name, std::make_pair(fi, ti));
    if (skipped_.count(name)) fail("tensor '{}' appears in two shards (the second: {})", name, path);
    if (!inserted)
      fail("tensor '{}' appears in both {} and {}", name, files_[it->second.first]->path(), path);
  }
  shard_paths_.push_back(path);
  files_.push_back(std::move(f));
}

TensorStore::TensorStore(const std::string& path, const NameFilter& want) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    add_file(path, {});
    return;
  }
  if (!fs::is_directory(path, ec)) {
    const std::string kind = file_kind(path);  // a FIFO or device: refused by name, never opened
    if (kind.empty()) fail("{}: no such file or directory", path);
    fail("{}: not a safetensors file or a checkpoint directory ({})", path, kind);
  }
  fs::path dir(path);
  fs::path index_path = dir / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    const MappedFile index_file(index_path.string());  // a FIFO or device is refused, never read
    SafetensorsIndex idx = parse_safetensors_index(
        std::string(reinterpret_cast<const char*>(index_file.data()), index_file.size()),
        index_path.string());
    std::vector<std::string> shards;
    std::set<std::string> wanted;  // shards holding a tensor `want` asks for
    for (const auto& [name, file] : idx.weight_map) {
      if (std::find(shards.begin(), shards.end(), file) == shards.end()) shards.push_back(file);
      if (!want || want(name)) wanted.insert(file);
    }
    std::sort(shards.begin(), shards.end());
    for (const auto& s : shards) {
      fs::path sp = dir / s;
      if (!fs::exists(sp, ec)) fail("{}: shard '{}' listed in the index is missing", index_path.string(), s);
      if (wanted.count(s)) add_file(sp.string(), {});
    }
    for (const auto& [name, file] : idx.weight_map) {
      if (!wanted.count(file)) {
        skipped_.insert(name);
        continue;
      }
      auto it = index_.find(name);
      if (it == index_.end() || fs::path(files_[it->second.first]->path()).filename() != file)
        fail("{}: tensor '{}' is listed in shard '{}' but not found there", index_path.string(), name, file);
    }
    return;
  }
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") found.push_back(e.path().string());
  if (found.empty()) fail("{}: no .safetensors files and no model.safetensors.index.json", path);
  std::sort(found.begin(), found.end());
  for (const auto& f : found) add_file(f, want);
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> r(skipped_.begin(), skipped_.end());
  for (const auto& [name, loc] : index_) r.push_back(name);
  std::sort(r.begin(), r.end());
  return r;
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  return &files_[it->second.first]->tensors()[it->second.second];
}

const TensorView& TensorStore::get(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) fail("tensor '{}' not found in checkpoint ({} shard(s))", name, files_.size());
  return *t;
}

const std::string& TensorStore::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("tensor '{}' not found in checkpoint", name);
  return files_[it->second.first]->path();
}

std::vector<const TensorView*> TensorStore::all() const {
  std::vector<const TensorView*> r;
  r.reserve(index_.size());
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) r.push_back(&t);
  std::sort(r.begin(), r.end(), [](auto* a, auto* b) { return a->name < b->name; });
  return r;
}

uint64_t TensorStore::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_)
    for (const auto& t : f->tensors()) n += t.nbytes;
  return n;
}

}  // namespace tqlm
