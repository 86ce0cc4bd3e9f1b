// kernels/cpu/quant_gemm.h (internal to kernels/cpu): what the quantized LINEAR driver (quant_linear.cpp) shares
// with its per-ISA micro-kernel tables (quant_isa_*.cpp): the layout of activations quantized per call, the tile a
// micro-kernel computes, and the table each ISA exports.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace autoglm::cpu::qgemm {

// Weight dtypes with integer kernels, in table order.
enum class wtype : uint8_t { I8, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, COUNT };
// The table index of `t`, or COUNT when it has no quantized kernel.
wtype wtype_of(dtype t);
// Whether activations are quantized in 256-element groups with 16-element sums (k-quants) or in 32-element blocks.
inline bool is_k_quant(wtype t) { return t == wtype::Q4_K || t == wtype::Q5_K || t == wtype::Q6_K; }
inline int64_t group_elems(wtype t) { return is_k_quant(t) ? 256 : 32; }

// Activations quantized per row (quant_linear.h gives the rule), each row `stride` bytes (a multiple of 64):
//   int8 qs[k] | float d[n_groups] | 32-blocks: int32 sum[n_groups] (sum of qs per block) |
//   256-groups: int16 bsum[n_groups * 16] (sum of qs per 16 elements).
struct xq_view {
  const uint8_t* base = nullptr;
  int64_t stride = 0, k = 0, n_groups = 0;
  const int8_t* qs(int64_t i) const { return reinterpret_cast<const int8_t*>(base + i * stride); }
  const float* d(int64_t i) const { return reinterpret_cast<const float*>(base + i * stride + k); }
  const int32_t* sum(int64_t i) const { return reinterpret_cast<const int32_t*>(d(i) + n_groups); }
  const int16_t* bsum(int64_t i) const { return reinterpret_cast<const int16_t*>(d(i) + n_groups); }
};
int64_t xq_row_bytes(wtype t, int64_t k);

// One micro-kernel call: outputs y[i][j] for x rows i0 .. i0 + MR and W rows n0 .. n0 + nr (nr <= the table's nr;
// missing rows are computed on a repeat of the last one and not written).
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
using mk_fn = void (*)(const tile&);

constexpr int k_max_mr = 4;

struct isa_table {
  const char* name;
  int nr;          // W rows per tile
  int prefill_mr;  // x rows per tile once there are many (decode uses MR = rows for 1 .. prefill_mr - 1)
  mk_fn mk[size_t(wtype::COUNT)][k_max_mr];  // [weight type][MR - 1]
};

// The tables compiled into this build (null when the file is for another architecture).
const isa_table* table_portable();
const isa_table* table_avx2();
const isa_table* table_avx512_vnni();
const isa_table* table_neon_dotprod();

}  // namespace autoglm::cpu::qgemm
