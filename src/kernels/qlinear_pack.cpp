#include "kernels/qlinear_pack.h"

#include <cstring>
#include <new>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/affine.h"

namespace tqlm {

bool qlinear_packable(const Linear& w) {
  if (w.parts) {
    for (const Linear& p : *w.parts)
      if (!qlinear_packable(p)) return false;
    return true;
  }
  return w.quantized() && (w.bits == 2 || w.bits == 4 || w.bits == 8) && w.in % 32 == 0 &&
         (w.sdtype == DType::BF16 || w.sdtype == DType::F16 || w.sdtype == DType::F32);
}

bool qlinear_pack_pays(const Linear& w) {
  if (w.parts) return !w.parts->empty() && qlinear_pack_pays((*w.parts)[0]);
  return w.group_size >= 64 || w.in >= 2048;
}

int64_t qlinear_packed_tile_bytes(const Linear& w) {
  const int64_t codes = 16 * w.in * w.bits / 8,
                sb = 2 * 16 * (w.in / w.group_size) * int64_t(dtype_size(w.sdtype));
  return (codes + sb + 63) / 64 * 64;
}

namespace {

// The byte offset and bit shift of code c of tile row i within the codes area.
inline void code_place(int bits, int64_t c, int i, int64_t& byte, int& shift) {
  const int64_t per_vec = 32 / bits, v = c / per_vec, rem = c % per_vec;
  byte = v * 64 + i * 4 + rem % 4;
  shift = int(rem / 4) * bits;
}

// Tile t of one [out, in] matrix into dst (packed_tile_bytes, zeroed by the caller).
void pack_tile(const Linear& w, int64_t t, uint8_t* tile, std::vector<uint8_t>& codes) {
  const int64_t groups = w.in / w.group_size, words = w.in * w.bits / 32, per_vec = 32 / w.bits;
  const size_t esz = dtype_size(w.sdtype);
  uint8_t* sc = tile + 16 * w.in * w.bits / 8;
  uint8_t* bi = sc + size_t(16 * groups) * esz;
  for (int i = 0; i < 16 && 16 * t + i < w.out; ++i) {
    const int64_t r = 16 * t + i;
    affine_unpack_row(w.wq + r * words, w.in, w.bits, codes.data());
    const uint8_t* c = codes.data();
    for (int64_t v = 0; v < w.in / per_vec; ++v, c += per_vec)  // code v * per_vec + 4p + m
      for (int m = 0; m < 4; ++m) {
        uint8_t byte = 0;
        for (int p = 0; p < per_vec / 4; ++p) byte = uint8_t(byte | (c[4 * p + m] << (p * w.bits)));
        tile[v * 64 + i * 4 + m] = byte;
      }
    for (int64_t g = 0; g < groups; ++g) {
      std::memcpy(sc + size_t(g * 16 + i) * esz,
                  static_cast<const uint8_t*>(w.scales) + size_t(r * groups + g) * esz, esz);
      std::memcpy(bi + size_t(g * 16 + i) * esz,
                  static_cast<const uint8_t*>(w.biases) + size_t(r * groups + g) * esz, esz);
    }
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
  uint8_t* buf = static_cast<uint8_t*>(::operator new[](bytes, std::align_val_t(64)));
  p.packed_store = std::shared_ptr<const uint8_t>(
      buf, [](const uint8_t* b) { ::operator delete[](const_cast<uint8_t*>(b), std::align_val_t(64)); });
  auto work = [&](int64_t a, int64_t b) {  // tiles [a, b) over all experts
    std::vector<uint8_t> codes(size_t(w.in));
    for (int64_t k = a; k < b; ++k) {
      uint8_t* tile = buf + k * tb;
      std::memset(tile, 0, size_t(tb));
      pack_tile(w.n_experts == 1 ? w : w.expert(k / tiles), k % tiles, tile, codes);
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
