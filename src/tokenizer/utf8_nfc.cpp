#include "tokenizer/utf8_nfc.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "tokenizer/utf8.h"

namespace tqlm::utf8 {
namespace {

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

struct Tables {
  std::unordered_map<char32_t, std::pair<char32_t, char32_t>> decomp;  // one level; second 0 = singleton
  std::unordered_map<uint64_t, char32_t> compose;                      // (first << 32 | second) -> composite

  Tables() {
    decomp.reserve(detail::kDecompCount * 2);
    for (size_t k = 0; k < detail::kDecompCount; ++k) {
      const uint32_t* e = detail::kDecompTable + 3 * k;
      const char32_t cp = e[0] & 0x7FFFFFFFu;
      decomp[cp] = {e[1], e[2]};
      if (e[0] >> 31) compose[(uint64_t(e[1]) << 32) | e[2]] = cp;
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

int ccc(char32_t cp) {
  if (cp < 0x300) return 0;
  size_t lo = 0, hi = detail::kCccCount;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    const uint32_t* r = detail::kCccTable + 3 * mid;
    if (cp < r[0])
      hi = mid;
    else if (cp > r[1])
      lo = mid + 1;
    else
      return static_cast<int>(r[2]);
  }
  return 0;
}

void decompose_into(const Tables& t, char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  auto it = cp < 0xC0 ? t.decomp.end() : t.decomp.find(cp);
  if (it == t.decomp.end()) {
    out.push_back(cp);
    return;
  }
  decompose_into(t, it->second.first, out);
  if (it->second.second) decompose_into(t, it->second.second, out);
}

// Full canonical decomposition followed by canonical ordering of each run of non-starters.
std::vector<char32_t> decompose(std::string_view s) {
  const Tables& t = tables();
  std::vector<char32_t> cps;
  cps.reserve(s.size());
  for (size_t i = 0; i < s.size();) decompose_into(t, next(s, i), cps);
  for (size_t i = 0; i < cps.size();) {
    if (ccc(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && ccc(cps[j]) != 0) ++j;
    if (j - i > 1) {
      auto by_class = [](char32_t a, char32_t b) { return ccc(a) < ccc(b); };
      std::stable_sort(cps.begin() + i, cps.begin() + j, by_class);
    }
    i = j;
  }
  return cps;
}

char32_t compose_pair(const Tables& t, char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  const bool lv = a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0;
  if (lv && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  auto it = t.compose.find((uint64_t(a) << 32) | b);
  return it == t.compose.end() ? 0 : it->second;
}

bool needs_work(std::string_view s) {
  // Everything below U+0300 is NFC/NFD-stable unless followed by a combining mark, which is >= U+0300;
  // except U+00C0..U+00FF, which decompose under NFD.
  for (unsigned char c : s) {
    if (c >= 0xCC) return true;  // lead byte of U+0300 and above
  }
  return false;
}

std::string encode(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append(out, c);
  return out;
}

}  // namespace

std::string nfd(std::string_view s) {
  bool ascii = true;
  for (unsigned char c : s) ascii = ascii && c < 0x80;
  if (ascii) return std::string(s);
  return encode(decompose(s));
}

namespace {
std::string nfc_full(std::string_view s) {
  const Tables& t = tables();
  std::vector<char32_t> cps = decompose(s);
  size_t out = 0;
  size_t starter = SIZE_MAX;
  int last_class = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const int cc = ccc(c);
    if (starter != SIZE_MAX && (last_class < cc || (last_class == 0 && out == starter + 1))) {
      const char32_t comp = compose_pair(t, cps[starter], c);
      if (comp) {
        cps[starter] = comp;
        continue;
      }
    }
    if (cc == 0) starter = out;
    last_class = cc;
    cps[out++] = c;
  }
  cps.resize(out);
  return encode(cps);
}
}  // namespace

std::string nfc(std::string_view s) {
  if (!needs_work(s)) return std::string(s);
  // Characters below U+0300 are starters that never compose with what precedes them, so only the runs of
  // characters >= U+0300 (with the character before each run) need the full algorithm.
  std::string out;
  out.reserve(s.size());
  size_t copied = 0, i = 0;
  auto high = [&](size_t k) { return static_cast<unsigned char>(s[k]) >= 0xCC; };
  auto is_cont = [&](size_t k) { return (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80; };
  while (i < s.size()) {
    if (!high(i)) {
      ++i;
      continue;
    }
    size_t b = i;
    if (b > copied) {
      --b;
      while (b > copied && is_cont(b)) --b;
    }
    size_t e = i;
    while (e < s.size() && (high(e) || is_cont(e))) ++e;
    out.append(s.substr(copied, b - copied));
    out += nfc_full(s.substr(b, e - b));
    copied = i = e;
  }
  out.append(s.substr(copied));
  return out;
}

}  // namespace tqlm::utf8
