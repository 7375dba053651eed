// The packed layout of quantized weights for the integer kernels: MLX affine codes rearranged once at load
// into tiles of 16 rows in which one 64-byte vector holds 4 bytes of each row, so a kernel multiplies it
// with a broadcast 4-byte run of int8 activations (vpdpbusd) and each 32-bit lane accumulates one row's sum:
// no per-row horizontal reduction, no byte permutes, and one sequential stream per matrix. The 256-bit kernels
// (qlinear_packed256.h) read each vector as two halves, rows 0-7 and rows 8-15.
//
// Tile t (rows 16t .. 16t+15; rows at or past `out` are zero), packed_tile_bytes long, 64-byte aligned:
//   codes  [in * bits / 32][16 rows][4 bytes]  vector v, row i, byte m: bits [p * bits, (p + 1) * bits)
//                                              hold code v * (32 / bits) + 4p + m of the row
//                                              (p < 8 / bits: "plane" p is (vector >> p * bits) & mask)
//   scales [groups][16 rows]  sdtype, as stored
//   biases [groups][16 rows]  sdtype
// Every 16-block of codes (one activation block, qact.h) is then bits / 2 vectors holding 4 planes, plane j
// against activation bytes 4j .. 4j+3 of the block. Bit widths 2, 4 and 8 (planes whole bytes apart), and 3:
// per pair of 16-blocks (32 codes, 192 bytes) two vectors of the codes' low 2 bits laid out as 2-bit blocks,
// then one of their high bits: byte (row i, m) bit 4b + p = high bit of code 4p + m of block b of the pair
// (plane j of block b = low pair | high bit << 2). 5- and 6-bit weights keep the MLX layout. Stacked
// experts: E such matrices back to back.
#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/linear_weight.h"

namespace tqlm {

// Whether qlinear_pack handles w (quantized, 2/3/4/8 bits, float scales of 2 or 4 bytes).
bool qlinear_packable(const Linear& w);

// Bytes of one 16-row tile of w in the packed layout.
int64_t qlinear_packed_tile_bytes(const Linear& w);

// A copy of w that also carries the packed layout (Linear::packed, owned by packed_store; separate experts:
// each part packed). wq, scales and biases still point at the original. Requires qlinear_packable(w).
// Tiles split over `pool` when given.
Linear qlinear_pack(const Linear& w, ThreadPool* pool = nullptr);

// Row r of a packed single matrix back as codes [in] and f32 scales/biases [groups] (tests and the
// reference reader of the layout).
void qlinear_packed_row(const Linear& w, int64_t r, uint8_t* codes, float* scales, float* biases);

}  // namespace tqlm
