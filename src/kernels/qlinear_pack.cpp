#include "kernels/qlinear_pack.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace tqlm {

bool qlinear_packable(const Linear& w) {
  if (w.parts) {
    for (const Linear& p : *w.parts)
      if (!qlinear_packable(p)) return false;
    return true;
  }
  return w.quantized() && (w.bits == 2 || w.bits == 3 || w.bits == 4 || w.bits == 8) && w.in % 32 == 0 &&
         (w.sdtype == DType::BF16 || w.sdtype == DType::F16 || w.sdtype == DType::F32);
}

int64_t qlinear_packed_tile_bytes(const Linear& w) {
  const int64_t codes = 16 * w.in * w.bits / 8,
                sb = 2 * 16 * (w.in / w.group_size) * int64_t(dtype_size(w.sdtype));
  return (codes + sb + 63) / 64 * 64;
}

namespace {

// The byte offset and bit shift of code c of tile row i within the codes area (3 bits: of its low 2 bits;
// its high bit sits in byte hi_byte at bit hi_shift).
inline void code_place(int bits, int64_t c, int i, int64_t& byte, int& shift) {
  if (bits == 3) {
    const int64_t rem = c % 32, cc = rem % 16;
    byte = (c / 32) * 192 + (rem / 16) * 64 + i * 4 + cc % 4;
    shift = int(cc / 4) * 2;
    return;
  }
  const int64_t per_vec = 32 / bits, v = c / per_vec, rem = c % per_vec;
  byte = v * 64 + i * 4 + rem % 4;
  shift = int(rem / 4) * bits;
}
inline void code_place_hi3(int64_t c, int i, int64_t& byte, int& shift) {
  const int64_t rem = c % 32, cc = rem % 16;
  byte = (c / 32) * 192 + 128 + i * 4 + cc % 4;
  shift = int(rem / 16) * 4 + int(cc / 4);
}

// One MLX word (the 32 / bits codes of row i that vector v holds) in the packed dword order: byte m, bits
// [p * bits, (p + 1) * bits) = code 4p + m of the word (code j of the MLX word sits at bits [j * bits, ...)).
template <int BITS>
inline uint32_t packed_dword(uint32_t word) {
  if constexpr (BITS == 8) {
    return word;  // 4 codes: already byte m = code m
  } else {
    uint32_t out = 0;
    for (int j = 0; j < 32 / BITS; ++j) {
      const uint32_t code = (word >> (j * BITS)) & ((1u << BITS) - 1);
      out |= code << (8 * (j % 4) + BITS * (j / 4));
    }
    return out;
  }
}

// Row i's scales and biases [groups] into column i of the tile's [groups][16] (fixed-size copies: inlined).
template <size_t ESZ>
inline void transpose_sb(const uint8_t* s, const uint8_t* b, int64_t groups, int i, uint8_t* sc,
                         uint8_t* bi) {
  for (int64_t g = 0; g < groups; ++g) {
    std::memcpy(sc + size_t(g * 16 + i) * ESZ, s + size_t(g) * ESZ, ESZ);
    std::memcpy(bi + size_t(g * 16 + i) * ESZ, b + size_t(g) * ESZ, ESZ);
  }
}

// Tile t of one [out, in] matrix into tile (packed_tile_bytes; rows past `out` and the padding zeroed here).
template <int BITS>
void pack_tile(const Linear& w, int64_t t, uint8_t* tile) {
  const int64_t groups = w.in / w.group_size, words = w.in * BITS / 32, tb = w.packed_tile_bytes;
  const size_t esz = dtype_size(w.sdtype);
  uint8_t* sc = tile + 16 * w.in * BITS / 8;  // [groups][16]
  uint8_t* bi = sc + size_t(16 * groups) * esz;
  const int rows = int(std::min<int64_t>(16, w.out - 16 * t));
  if (rows < 16 || BITS == 3) std::memset(tile, 0, size_t(tb));  // 3 bits: codes are or-ed in
  std::memset(bi + size_t(16 * groups) * esz, 0, size_t(tile + tb - (bi + size_t(16 * groups) * esz)));
  for (int i = 0; i < rows; ++i) {
    const int64_t r = 16 * t + i;
    const uint32_t* src = w.wq + r * words;
    if constexpr (BITS == 3) {  // the MLX row is one bit stream: code c at bits [3c, 3c + 3)
      for (int64_t c = 0; c < w.in; ++c) {
        const int64_t bit = 3 * c;
        uint64_t two = src[bit / 32];
        if (bit / 32 + 1 < words) two |= uint64_t(src[bit / 32 + 1]) << 32;
        const unsigned code = unsigned(two >> (bit % 32)) & 7u;
        int64_t byte;
        int shift;
        code_place(3, c, i, byte, shift);
        tile[byte] = uint8_t(tile[byte] | (code & 3u) << shift);
        code_place_hi3(c, i, byte, shift);
        tile[byte] = uint8_t(tile[byte] | (code >> 2) << shift);
      }
    } else {
      for (int64_t v = 0; v < words; ++v) {
        const uint32_t d = packed_dword<BITS>(src[v]);
        std::memcpy(tile + v * 64 + i * 4, &d, 4);
      }
    }
    const auto* s = static_cast<const uint8_t*>(w.scales) + size_t(r * groups) * esz;
    const auto* b = static_cast<const uint8_t*>(w.biases) + size_t(r * groups) * esz;
    if (esz == 2)
      transpose_sb<2>(s, b, groups, i, sc, bi);
    else
      transpose_sb<4>(s, b, groups, i, sc, bi);
  }
}

}  // namespace

Linear qlinear_pack(const Linear& w, ThreadPool* pool) {
  if (!qlinear_packable(w)) fail("qlinear_pack: {} ({} bits) has no packed layout", w.name, w.bits);
  Linear p = w;
  if (w.parts) {
    auto parts = std::make_shared<std::vector<Linear>>();
    for (const Linear& part : *w.parts) parts->push_back(qlinear_pack(part, pool));
    p.parts = parts;
    return p;
  }
  const int64_t tb = qlinear_packed_tile_bytes(w), tiles = (w.out + 15) / 16;
  const size_t bytes = size_t(tiles * tb * w.n_experts);
  // 64-byte aligned. (Transparent huge pages via madvise were tried: page faults in this VM then cost 2.8 s
  // of system time per 1.4 GB instead of 0.65, load 4.1 -> 8.6 s.)
  uint8_t* buf = static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t(64)));
  p.packed_store = std::shared_ptr<const uint8_t>(
      buf, [](const uint8_t* b) { ::operator delete[](const_cast<uint8_t*>(b), std::align_val_t(64)); });
  p.packed_tile_bytes = tb;
  auto work = [&](int64_t a, int64_t b) {  // tiles [a, b) over all experts
    for (int64_t k = a; k < b; ++k) {
      Linear m = w.n_experts == 1 ? w : w.expert(k / tiles);
      m.packed_tile_bytes = tb;
      uint8_t* tile = buf + k * tb;
      if (w.bits == 2)
        pack_tile<2>(m, k % tiles, tile);
      else if (w.bits == 3)
        pack_tile<3>(m, k % tiles, tile);
      else if (w.bits == 4)
        pack_tile<4>(m, k % tiles, tile);
      else
        pack_tile<8>(m, k % tiles, tile);
    }
  };
  if (pool)
    pool->parallel_for(tiles * w.n_experts, 16, [&](int64_t a, int64_t b, int) { work(a, b); });
  else
    work(0, tiles * w.n_experts);
  p.packed = buf;
  p.packed_tile_bytes = tb;
  return p;
}

void qlinear_packed_row(const Linear& w, int64_t r, uint8_t* codes, float* scales, float* biases) {
  const int64_t groups = w.in / w.group_size;
  const size_t esz = dtype_size(w.sdtype);
  const uint8_t* tile = w.packed + (r / 16) * w.packed_tile_bytes;
  const int i = int(r % 16);
  for (int64_t c = 0; c < w.in; ++c) {
    int64_t byte;
    int shift;
    code_place(w.bits, c, i, byte, shift);
    if (w.bits == 3) {
      codes[c] = uint8_t((tile[byte] >> shift) & 3);
      code_place_hi3(c, i, byte, shift);
      codes[c] = uint8_t(codes[c] | ((tile[byte] >> shift) & 1) << 2);
      continue;
    }
    codes[c] = uint8_t((tile[byte] >> shift) & ((1 << w.bits) - 1));
  }
  const uint8_t* sc = tile + 16 * w.in * w.bits / 8;
  const uint8_t* bi = sc + size_t(16 * groups) * esz;
  for (int64_t g = 0; g < groups; ++g) {
    scales[g] = load_as_f32(sc, w.sdtype, size_t(g * 16 + i));
    biases[g] = load_as_f32(bi, w.sdtype, size_t(g * 16 + i));
  }
}

}  // namespace tqlm
