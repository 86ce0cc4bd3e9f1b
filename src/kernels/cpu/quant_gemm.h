// kernels/cpu/quant_gemm.h (internal to kernels/cpu): what the quantized LINEAR driver (quant_linear.cpp) shares
// with its per-ISA micro-kernel tables (quant_isa_*.cpp): the layout of activations quantized per call, the tile a
// micro-kernel computes, and the table each ISA exports.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace autoglm::cpu {
struct r16_layout;
}

namespace autoglm::cpu::qgemm {

// Weight dtypes with integer kernels, in table order.
enum class wtype : uint8_t { I8, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q4_1, Q5_0, Q5_1, COUNT };
// The table index of `t`, or COUNT when it has no quantized kernel.
wtype wtype_of(dtype t);
// Whether activations are quantized in 256-element groups with 16-element sums (k-quants) or in 32-element blocks.
inline bool is_k_quant(wtype t) { return t == wtype::Q4_K || t == wtype::Q5_K || t == wtype::Q6_K; }
inline int64_t group_elems(wtype t) { return is_k_quant(t) ? 256 : 32; }

// Activations quantized per row (quant_linear.h gives the rule), each row `stride` bytes (a multiple of 64):
//   int8 qs[k] | float d[n_groups] | 32-blocks: int32 sum[n_groups] (sum of qs per block) |
//   256-groups: per group int16 bsum16[16] (sums of qs per 16 elements) then int16 bsum32[8] (per 32).
struct xq_view {
  const uint8_t* base = nullptr;
  int64_t stride = 0, k = 0, n_groups = 0;
  const int8_t* qs(int64_t i) const { return reinterpret_cast<const int8_t*>(base + i * stride); }
  const float* d(int64_t i) const { return reinterpret_cast<const float*>(base + i * stride + k); }
  const int32_t* sum(int64_t i) const { return reinterpret_cast<const int32_t*>(d(i) + n_groups); }
  // The 24 sums of group g: 16 per 16 elements, then 8 per 32.
  const int16_t* bsum(int64_t i, int64_t g) const { return reinterpret_cast<const int16_t*>(d(i) + n_groups) + 24 * g; }
};
int64_t xq_row_bytes(wtype t, int64_t k);

// One micro-kernel call: outputs y[i][j] for x rows i0 .. i0 + MR and W rows n0 .. n0 + nr (nr <= 8; missing rows
// are computed on a repeat of the last one and not written).
struct tile {
  const uint8_t* w = nullptr;  // W row n0
  int64_t w_stride = 0;        // bytes between W rows
  int nr = 0;
  const float* wscale = nullptr;  // I8: per-row scales from n0
  const float* bias = nullptr;    // from n0, or null
  xq_view x;
  int64_t i0 = 0;
  float* y = nullptr;  // element (i0, n0) of y
  int64_t y_stride = 0;
};

constexpr int k_tile_rows = 8;    // W rows per tile: the 8 lanes of a vector
constexpr int k_decode_rows = 3;  // up to this many x rows read W in place (decode); more pack W tiles (prefill)
constexpr int k_max_mr = 6;       // x rows per packed register tile, at most

using decode_fn = void (*)(const tile&);                           // MR = 1 .. k_decode_rows
using pack_fn = void (*)(const tile&, int64_t n_groups, uint8_t* out);  // W rows of the tile -> packed
// MR x rows against groups [g0, g1) of a packed tile; `state` carries the accumulators between group blocks.
using packed_fn = void (*)(const tile&, const uint8_t* packed, int64_t g0, int64_t g1, float* state);

// One row of x (k elements, groups of `group`) to its quantized form at `out` (xq_view's row layout).
using quantize_fn = void (*)(const float* x, int64_t k, int64_t group, uint8_t* out);

// Wide prefill (AVX-512 VNNI; every type but I8): the same integers and float steps as
// packed_fn, on register tiles of wide_mr x rows by wide_rows W rows. x is first laid out in panels of wide_mr rows
// (wide_pack_x of the weight type: per group, the rows' 4-byte groups interleaved, then their scales and, for the
// k-quants, their sums; rows past m are zeros), and each thread packs each of its W tiles once per call and runs
// every panel against it.
// With swiglu, W holds 2n rows (gate rows 0 .. n - 1, then the up rows), bias 2n values, y [m, n] = silu(gate) * up
// (the bytes of LINEAR into [m, 2n] then SILU_MUL): each tile is 16 gate rows and the 16 up rows that pair with them.
struct wide_job {
  const uint8_t* w = nullptr;  // W row 0
  int64_t w_stride = 0, n = 0;  // bytes between W rows; W rows (swiglu: gate rows, the outputs per x row)
  const float* bias = nullptr;  // [n] or null
  const uint8_t* xp = nullptr;  // panels of x written by wide_pack_x
  int64_t m = 0, n_groups = 0;
  float* y = nullptr;  // [m, n], rows y_stride floats apart
  int64_t y_stride = 0;
  bool swiglu = false;
  // Or W as an r16 copy (quant_repack.h; w unused, w_stride the file layout's row bytes): each tile's rows are unpacked
  // to the file's layout in the thread's buffer first.
  const r16_layout* r16 = nullptr;
  const uint8_t* r16_data = nullptr;
};
// Panels [p0, p1) of x's m quantized rows to `out` (wide_x_group_bytes of the type per group per panel).
using wide_pack_x_fn = void (*)(const xq_view& x, int64_t m, int64_t p0, int64_t p1, uint8_t* out);
// W tiles [t0, t1) (wide_rows W rows each; swiglu: wide_rows / 2 outputs each) against every panel of x.
using wide_fn = void (*)(const wide_job& j, int64_t t0, int64_t t1);

struct isa_table {
  const char* name;
  quantize_fn quantize;
  int prefill_mr[size_t(wtype::COUNT)];  // x rows per packed register tile, per weight type (<= k_max_mr)
  decode_fn dk[size_t(wtype::COUNT)][k_decode_rows];
  pack_fn pack[size_t(wtype::COUNT)];
  int64_t packed_bytes[size_t(wtype::COUNT)];  // per group
  packed_fn pk[size_t(wtype::COUNT)][k_max_mr];
  // Wide prefill, where this ISA has it (null entries fall back to pack / pk).
  wide_fn wide[size_t(wtype::COUNT)];
  wide_pack_x_fn wide_pack_x[size_t(wtype::COUNT)];
  int64_t wide_x_group_bytes[size_t(wtype::COUNT)];
  int wide_rows, wide_mr;
};

// The tables compiled into this build (null when the file is for another architecture).
const isa_table* table_portable();
const isa_table* table_avx2();
const isa_table* table_avx512_vnni();
// The avx512-vnni table with its Q4_0 / Q5_0 decode kernels compiled with GFNI (quant_isa_avx512_gfni.cpp's
// fill_decode_gfni); called only once the CPU is known to have both.
const isa_table* table_avx512_gfni();
const isa_table* table_neon_dotprod();
#if defined(__x86_64__)
// Sets the wide prefill entries of the AVX-512 VNNI table (quant_wide_avx512.cpp).
void fill_wide_avx512(isa_table& tab);
void fill_decode_gfni(isa_table& tab);
#endif
#if defined(__aarch64__)
// The dotprod table with its prefill entries (pack, packed kernels, prefill_mr) replaced by fill_prefill_i8mm's,
// which lives in a per-file -march source (quant_isa_neon_arm_i8mm.cpp): aarch64 builds only.
const isa_table* table_neon_i8mm();
void fill_prefill_i8mm(isa_table& tab);
#endif

}  // namespace autoglm::cpu::qgemm
