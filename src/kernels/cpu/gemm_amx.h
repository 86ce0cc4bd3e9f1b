// kernels/cpu/gemm_amx.h: the prefill GEMM for BF16 weights on AMX tiles (Xeon Sapphire Rapids and later),
// y[m, n] = bf16(x)[m, k] . W[n, k]^T + b (internal to kernels/cpu; LINEAR takes it where use_amx_gemm says so).
//
// Numerics: those of the AVX-512 BF16 GEMM (gemm_bf16.h) except the order of the F32 sums: x rounded to bf16 to
// nearest even, W exact, every product exact in F32, accumulated in F32 on the tiles (tdpbf16ps: the hardware's own
// order within a 32-element step, denormal inputs and sums flushed), bias added last. An output depends on its x
// row and W row only (not on m, the blocking or the threads), but is not bit-equal to the vdpbf16ps chain.
//
// Structure: y^T = W . x^T, so W needs no packing: its rows are the A tiles (16 rows x 32 bf16, loaded in place with
// the row stride; a block whose rows or k end inside a tile, or of quantized rows, is copied zero-padded first). x is
// rounded and packed once per call (a super-block of rows at a time) into B tiles: per 16 x rows and 32-element step
// of k, 16 rows of 16 bf16 pairs (row kk = (x[i][2kk], x[i][2kk + 1]) for the 16 x rows i). A task is up to 4 blocks
// of 32 W rows (as many as keep their rows within ~1 MiB of L2) against up to 8 blocks of 32 x rows: per pair of
// blocks the 2 x 2 tile step (amx.h) over all of k, the 32 x 32 result transposed into y. Measured on a 16-core Xeon
// (16 threads): a 512-token prefill of 4 layers with the 9B dimensions 3.0-3.3x the vdpbf16ps GEMM's time.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm.h"

namespace autoglm::cpu {

constexpr int64_t k_amx_gemm_min_rows = 16;  // one B tile of x rows; fewer take the vdpbf16ps GEMM
constexpr int64_t k_amx_gemm_x_pack_bytes = int64_t(16) << 20;  // packed x per super-block of rows (L3)
// Bytes of packed x per super-block (at least one block of 32 rows is packed); tests lower it to cut super-blocks.
void set_amx_gemm_x_pack_bytes(int64_t bytes);

// The weight types the AMX GEMM takes: BF16 (read in place), the GGUF block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q4_K, Q5_K, Q6_K) and I8 (per-row scales, below), whose rows it dequantizes to bf16 (each weight computed in F32
// as core's dequantizer does, rounded once to nearest even; I8 the integers, exact) into the zero-padded block copy,
// once per task (and reused by the thread's next task of the same blocks): the quantized LINEAR's prefill on AMX
// CPUs (quant_linear.h).
bool amx_gemm_weight_type(dtype type);
// LINEAR takes the AMX GEMM: weights of amx_gemm_weight_type, m >= k_amx_gemm_min_rows, the ROUNDED precision
// (gemm_bf16.h) and the tiles usable (amx_bf16_usable, amx.h).
bool use_amx_gemm(dtype type, int64_t m);

// y [m, n] (row stride ys floats) = bf16(x) [m, k] (row stride xs) . bf16(W)^T + bias (F32 [n] or null): W BF16,
// or quantized rows of whole blocks rounded to bf16 as above. I8 rows (and only they) come with their per-row scales
// (row_scale, F32 [n]): their integers are exact in bf16 and y = fma(sum, row_scale[j], bias[j] or 0), as the
// integer kernels apply them.
void gemm_bf16_amx(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n,
                   int64_t k, const float* bias, float* y, int64_t ys, const float* row_scale = nullptr);
// The same code over amx_emulated (amx.h): for tests of the layouts on machines without AMX.
void gemm_bf16_amx_emulated(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w,
                            int64_t n, int64_t k, const float* bias, float* y, int64_t ys,
                            const float* row_scale = nullptr);

}  // namespace autoglm::cpu
