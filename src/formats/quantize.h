// formats/quantize.h: f32 -> the GGUF block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), F16/BF16, and
// our I8 with per-row (per-output-channel) scales. Used by `autoglm quantize` (GGUF writer), `serve --quant` (at
// load) and the tests. Layouts are ggml's (core/quant_blocks.h); every quantizer is deterministic (same input,
// same bytes).
//
// How scales are chosen (each minimizes the squared reconstruction error, i.e. the RMSE, of its block):
//  - Q8_0: d = max|x| / 127, q = round(x / d) (ties away from zero), as ggml's reference: 8 bits leave nothing to
//    search for.
//  - Q4_0 (x ~ d*q, q in [-8, 7]), Q5_0 (q in [-16, 15]) and Q6_K's sub-blocks (x ~ a*q, q in [-32, 31]): the
//    block's largest magnitude is mapped near either end of the range (2 signs x 21 candidate inverse scales from
//    (n-1)/max to (n+1)/max, n = 8, 16 or 32); for each, q = round(x * iscale) clamped, and the least-squares
//    scale for those q, a = sum(x q) / sum(q^2), whose error is sum(x^2) - (sum x q)^2 / sum(q^2); the best
//    candidate wins (d rounded to f16, q rounded again against it).
//  - Q4_1 / Q5_1 (x ~ d*q + m, q in [0, 15] / [0, 31], m of either sign): as the k-quant sub-blocks below with
//    the min free (candidates over [min, max] of the block, least-squares (d, m) per rounding, two refinement
//    rounds); d and m rounded to f16 and q rounded again against the decoder's values.
//  - Q4_K / Q5_K sub-blocks of 32 (x ~ a*q - b, q in [0, nmax], a >= 0, b >= 0): 21 candidate inverse scales
//    (nmax - 1 .. nmax + 1) / (max - min(min, 0)); for each, q = round((x - lo) * iscale) clamped and the
//    least-squares (a, b) of that q (b clamped to >= 0, a refit), keeping the lowest error; then two rounds of
//    re-rounding q against the current (a, b) and refitting, kept while the error falls.
//  - Super-blocks (Q4_K/Q5_K: 6-bit scales and mins; Q6_K: int8 scales): d = f16(max a / 63) (Q6_K: max |a| /
//    127), sc = round(a / d); then every sub-block tries its quantized scale (and min) and their neighbours +-1,
//    re-rounding q for each pair against the values the decoder will actually compute, and keeps the best.
// Round-trip errors on N(0, 1) data (tests/formats/quantize_test.cpp checks bounds): relative RMSE about 0.005
// (Q8_0), 0.08 (Q4_0), 0.07 (Q4_1), 0.04 (Q5_0), 0.034 (Q5_1), 0.07 (Q4_K), 0.035 (Q5_K), 0.017 (Q6_K).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace autoglm::quant {

// Whether quantize_row can produce `t`: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K.
bool can_quantize(dtype t);

// One row of n floats to `t`; n must be a whole number of `t`'s blocks (throws autoglm::error otherwise, naming
// the type and the row length); dst holds dtype_row_bytes(t, n) bytes.
void quantize_row(dtype t, const float* src, void* dst, int64_t n);
// A [rows, cols] row-major matrix, dst rows dtype_row_bytes(t, cols) apart, rows split over `pool` (or serial).
void quantize_rows(dtype t, const float* src, void* dst, int64_t rows, int64_t cols, thread_pool* pool = nullptr);
// I8 per output channel: scales[r] = max|row r| / 127 (0 for an all-zero row), dst = round(src / scale).
void quantize_rows_i8(const float* src, int8_t* dst, float* scales, int64_t rows, int64_t cols,
                      thread_pool* pool = nullptr);

// A host tensor of the same shape in `t` holding the quantization of `src` (F32/F16/BF16, contiguous rows). For
// t == I8 the per-row scales (F32 [rows]) go to *scales, which must then be given. Throws autoglm::error when the
// type is not a target or the row length is not a whole number of blocks.
tensor quantize_tensor(const tensor& src, dtype t, tensor* scales = nullptr, thread_pool* pool = nullptr);

// The type to store a row of n elements as when `wanted` cannot hold it (a k-quant needs n % 256 == 0, the
// 32-element types n % 32 == 0): llama.cpp's rule (llama_tensor_get_type in llama-quant.cpp, for rows whose
// length is not a multiple of the type's block): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when the
// fallback does not divide n either (or for a 32-element type, which llama.cpp refuses outright). So a 9B
// Q4_K file stores ffn_down (rows of 13696 = 53.5 x 256) as Q5_0, as community Q4_K files do. Returns `wanted`
// when it fits.
dtype fallback_type(dtype wanted, int64_t n);

}  // namespace autoglm::quant
