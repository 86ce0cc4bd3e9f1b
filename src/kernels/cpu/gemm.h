// kernels/cpu/gemm.h: the compute-bound fp32 GEMM behind prefill linears, y[m, n] = x[m, k] . W[n, k]^T + b, for
// F32/F16/BF16 weights (internal to kernels/cpu; linear.cpp chooses it over the streaming GEMV for m >= 3).
//
// Numerics (every path, every ISA, every blocking, every thread count gives the same bits wherever FMA is
// hardware): each output is the "8-lane dot" of the original AVX2 kernels, so prefill rows equal decode rows:
//   lane l (0..7) accumulates fma(x[8s+l], w[8s+l], acc_l) for s = 0, 1, ... over k8 = k rounded down to 8;
//   sum = ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7));
//   sum = fma(x[j], w[j], sum) for the tail j = k8 .. k-1; y = sum + bias (or + 0).
// W elements are decoded exactly to fp32 (F16/BF16 -> F32 is exact), so nothing is rounded but the FMAs and the
// lane sum. The portable C++ path on a target without hardware FMA (x86-64 baseline) multiplies and adds
// separately (same order, slightly different rounding); aarch64 always has FMA and matches x86 bit for bit.
//
// Structure (GotoBLAS-style, roles of A and B swapped because W is the operand that needs converting):
// tasks are (MC rows of x) x (NC rows of W) blocks shared over the threads; within a task the k axis is cut in
// KC-blocks, the task's W block is converted once per KC-block into panels of NR rows laid out [k/8][NR][8]
// (one contiguous stream per micro-kernel call that stays in L1), and an MR x NR register tile of 8-lane
// accumulators runs over MR rows of x read in place. Between KC-blocks each tile's accumulators are parked in a
// per-task buffer (this is what keeps the order above exact), and the last block finishes them into y.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace autoglm::cpu {

struct r16_layout;

// W [n, k] in its storage dtype, rows addressed through a byte stride; or, with r16 set, rows of an r16 type
// (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K) in that layout at data (quant_repack.h: tiles of 16 interleaved rows, no
// row stride; only the AMX GEMM takes them).
struct weight_rows {
  dtype type = dtype::F32;
  const uint8_t* data = nullptr;
  int64_t row_bytes = 0;
  const r16_layout* r16 = nullptr;
  const void* row(int64_t r) const { return data + r * row_bytes; }
};

// Micro-kernel families. PORTABLE always exists; the others where the CPU has them.
enum class gemm_isa : uint8_t { PORTABLE, AVX2, AVX512, NEON };
const char* gemm_isa_name(gemm_isa isa);
bool gemm_isa_available(gemm_isa isa);  // honours force_portable_kernels (only PORTABLE then)
gemm_isa gemm_best_isa();               // the fastest available

// y [m, n] (row stride ys floats) = x [m, k] (row stride xs) . W^T + bias (F32 [n] or null), split over the
// pool (null: the calling thread). W must be F32, F16 or BF16.
void gemm_f32(thread_pool* pool, gemm_isa isa, const float* x, int64_t xs, int64_t m, const weight_rows& w,
              int64_t n, int64_t k, const float* bias, float* y, int64_t ys);

// The canonical 8-lane dot above for one output (the scalar definition; the decode path's portable version).
float dot8_canonical(const float* x, const float* w, int64_t k);

}  // namespace autoglm::cpu
