// kernels/cpu/quant_kv.h: rows of a Q8_0 KV cache (head_dim a multiple of 32: 4 blocks of 34 bytes per head row at
// head_dim 128, 53% of F16's memory). kv_store writes rows with ggml's Q8_0 rule (core/quant_blocks.h); the paged
// attention kernels read them back as f16(d) * q, which is exact in F32, so every path (dequantized row, or 8
// values at a time in the P.V registers) sees the same values and the attention arithmetic is that of an F32 cache
// holding them.
#pragma once

#include <cstdint>

namespace autoglm::cpu {

// dst[0..n) = the values of n / 32 Q8_0 blocks at src (AVX2 or portable; the same floats either way).
void q8_0_to_f32(const uint8_t* src, float* dst, int64_t n);
// n floats (a multiple of 32) to Q8_0 blocks at dst.
void f32_to_q8_0(const float* src, uint8_t* dst, int64_t n);

}  // namespace autoglm::cpu
