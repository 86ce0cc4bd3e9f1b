// kernels/cpu/quant_repack.h (internal to kernels/cpu, except the registered REPACK_WEIGHT kernel):
// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K linear weights re-laid out once at load in tiles of 16 rows ("r16"), the
// layout the x86 decode reads fastest.
//
// Why: the decode kernel on the file's layout (quant_decode_x86.h) reads 8 rows side by side in 16- or 32-byte pieces
// and adds each row's partial sums across lanes; on a 2-core Sapphire Rapids VM it streams Q4_0 at 17.5-20.5 GB/s,
// where a stand-alone probe of this layout streamed 21.3-23.2 (bench/results/cpu_xeon_amx_2026-12-07.md). Here one
// 64-byte load carries 4 bytes of each of 16 rows, one vpdpbusd against a broadcast of 4 x bytes serves 16 rows, and
// nothing is summed across lanes.
//
// Layout of an [n, k] weight (ng groups: k / 32, the k-quants k / 256; tiles of 16 rows, the last one padded with
// zero rows):
//   tile t (rows 16t .. 16t + 15) at t * tile_bytes:
//     scales (Q4_0/Q5_0/Q8_0): ng x 16 f16 (group g's at 32 g: row j's scale at 2 j), padded to a multiple of 64 bytes
//     groups: ng x nv x 64 bytes (group g's at scale_bytes + g * nv * 64); a vector's 32-bit lane j = 4 bytes of row j:
//       Q4_0 (nv = 4): vector v = the nibble bytes 4v .. 4v + 3 of qs as stored (low nibble element 4v + i, high
//             nibble element 16 + 4v + i);
//       Q5_0 (nv = 5): vector 0 = the 32 high bits, byte b's bit i = element 4i + b's, bit 4 + i = element
//             16 + 4i + b's (one shift per vector brings an element's bit beside its nibble); vectors 1 .. 4 = the
//             nibble bytes as Q4_0's vectors 0 .. 3;
//       Q8_0 (nv = 8): vector v = qs bytes 4v .. 4v + 3, each int8 + 128 (xor 0x80), unsigned as vpdpbusd takes it;
//       Q4_1 / Q5_1 (nv = 5 / 6, no scales area): the 16 rows' d (32 bytes) and m (32 bytes), then Q4_0's (Q5_0's)
//             vectors (the ffn_down of Q5_K_M files is Q5_1: 13,696 inputs hold no whole 256-element block);
//       Q4_K (nv = 36, no scales area): the 16 rows' d (32 bytes) and dmin (32 bytes), then 3 vectors of the 12 bytes
//             of 6-bit scales and mins (vector w = bytes 4w .. 4w + 3), then 32 vectors of qs (vector v = bytes
//             4v .. 4v + 3: chunk v / 8 of 32 bytes, low nibbles sub-block 2 (v / 8), high nibbles the next);
//       Q5_K (nv = 44, no scales area): as Q4_K with the 8 words of the high bits (qh) between the scales and qs;
//       Q6_K (nv = 53, no scales area): the 16 rows' d (32 bytes, then 32 zero), the 16 int8 scales (vectors 1 .. 4),
//             then ql and qh in the order the decode reads them: step i = 8 h + m (half h of the block, word m of its
//             32-byte ql / qh chunks) is vectors 5 + 3 i .. 7 + 3 i = ql words 16 h + m and 16 h + m + 8, qh word
//             8 h + m (q6k_vector_of_word). Read in file order (ql, qh, scales) the decode jumped between three places
//             of each group; in this order it streams 23.2-23.6 -> 24.2-26.5 GB/s (m = 1, n = 27,392).
// The values are the file's, bit for bit: every kernel that reads this layout computes the integers and float steps
// of quant_linear.h's rule, so results equal those of the file's layout exactly.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/quant_gemm.h"

namespace autoglm::cpu {

struct r16_layout {
  dtype type = dtype::Q4_0;  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K or Q6_K
  int64_t n = 0, k = 0, n_groups = 0, n_tiles = 0;
  int64_t nv = 0;           // 64-byte vectors per group
  int64_t scale_bytes = 0;  // per tile, padded to 64 (0 for Q4_K: its scales are in each group)
  int64_t tile_bytes = 0;
  int64_t bytes() const { return n_tiles * tile_bytes; }
  const uint16_t* scales(const uint8_t* packed, int64_t t) const {
    return reinterpret_cast<const uint16_t*>(packed + t * tile_bytes);
  }
  const uint8_t* quants(const uint8_t* packed, int64_t t) const { return packed + t * tile_bytes + scale_bytes; }
};

constexpr int64_t k_r16_rows = 16;

// Q5_0 / Q5_1's 32 high bits (qh as the block stores them) as the layout holds them, and back (quant_repack.cpp).
uint32_t q5_high_to_tile(uint32_t qh);
uint32_t q5_high_from_tile(uint32_t t);

// The vector of a Q6_K tile's group that holds block word w (0 .. 51: ql 0 .. 31, qh 32 .. 47, scales 48 .. 51).
constexpr int q6k_vector_of_word(int w) {
  if (w >= 48) return 1 + (w - 48);             // the scales
  if (w >= 32) return 7 + 3 * (w - 32);         // qh word 8 h + m: third of step 8 h + m
  const int h = w / 16, r = w % 16;             // ql word 16 h + r: step 8 h + r % 8, first (r < 8) or second
  return 5 + 3 * (8 * h + r % 8) + r / 8;
}

// Whether weights of `t` have an r16 layout (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K).
bool r16_type(dtype t);
// The layout of an [n, k] weight of r16_type `t` (k a whole number of its blocks).
r16_layout r16_layout_of(dtype t, int64_t n, int64_t k);

// w [n, k] (any row stride) in the r16 layout: a U8 tensor [bytes] owning page-aligned memory (alloc's where given
// and not null; already filled memory is taken as it is). Tiles are split over the pool.
tensor r16_pack(const tensor& w, thread_pool* pool, const repack_alloc& alloc = {});
// Rows [r0, r0 + nr) of a packed weight back in the file's block layout, row i at dst + i * dst_stride.
void r16_unpack_rows(const r16_layout& L, const uint8_t* packed, int64_t r0, int64_t nr, uint8_t* dst,
                     int64_t dst_stride);

// One decode call over packed tiles: y [m, n] (m = 1 .. qgemm::k_decode_rows x rows of x) = x . W^T + bias.
struct r16_job {
  const r16_layout* layout = nullptr;
  const uint8_t* packed = nullptr;
  const float* bias = nullptr;  // [n] or null
  qgemm::xq_view x;             // x quantized in 32-element groups (quant_gemm.h)
  int64_t m = 0;
  float* y = nullptr;  // [m, n], rows y_stride floats apart
  int64_t y_stride = 0;
};
// Tiles [t0, t1) of the job (every x row against each tile's 16 rows).
using r16_decode_fn = void (*)(const r16_job& job, int64_t t0, int64_t t1);
// The AVX-512 VNNI decode of `t` (any r16 type) for m x rows, or null where this build has none
// (quant_r16_avx512.cpp; call only where r16_decode_available()).
r16_decode_fn r16_decode_avx512(dtype t, int64_t m);
// Packs one tile with AVX-512 (rows[j]: row j of the tile in the file's layout, each a whole padding row of zero
// bytes past the weight's end) into `tile` (zeroed memory: the scales area's padding is left as it is), the bytes of
// the C++ packer; returns false where this build has no such code (r16_pack then packs in C++). Call only where the
// CPU has AVX-512 VNNI.
bool r16_pack_tile_avx512(const r16_layout& L, const uint8_t* const* rows, uint8_t* tile);

// Whether the quantized LINEAR has an r16 decode kernel on this CPU (AVX-512 VNNI) under the selected ISA.
bool r16_decode_available();
// Whether load repacks weights (REPACK_WEIGHT): AUTOGLM_CPU_REPACK=0 never, =1 wherever r16_decode_available(); unset,
// where the decode is available and the CPU also has AMX tiles (the prefill's GEMM reads the layout as it reads the
// file's; measured on that class only). `releasable` is whether the source's memory goes once the copy is made (pages
// of a read-only file mapping, or a private copy made at load): the automatic policy repacks only then, so resident
// memory does not grow (=1 also repacks weights whose memory stays).
bool r16_repack_wanted(bool releasable);

// The registered REPACK_WEIGHT kernel for the r16 types on the CPU: r16_pack(w) where r16_repack_wanted
// says so, else an empty tensor.
tensor repack_weight_kernel(const kernel_context& kc, const tensor& w, bool releasable, const repack_alloc& alloc);

}  // namespace autoglm::cpu
