// kernels/cpu/rope.h: rotary position embeddings of GLM-4.1V, fp32, in place.
#pragma once

#include <array>
#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

// Registered kernels (F32 x), signatures as kernel_sig::rope_mrope / rope_2d: x [n, >= n_heads*head_dim] with a
// free row stride; pos I32 [3, n] (t, h, w planes) or [2, n] (h, w planes).
void rope_mrope_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                       const tensor& pos, const std::array<int32_t, 3>& sections, float theta);
void rope_2d_kernel(const kernel_context& kc, tensor& x, int32_t n_heads, int32_t head_dim, const tensor& pos,
                    float theta);

// Legacy entry points on the default pool.
// Text M-RoPE (spec section 3), in place on x: [n_tok rows of stride row_stride][n_heads][head_dim].
// Pair i (i < rot_dim/2) rotates dims (2i, 2i+1) by pos_i * theta^(-2i/rot_dim), where pos_i is the t, h or w
// plane chosen by the cumulative `sections` (e.g. [8,12,12]); dims >= rot_dim pass through.
void rope_mrope_interleaved(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim,
                            int64_t rot_dim, const int32_t* pos_t, const int32_t* pos_h, const int32_t* pos_w,
                            const int32_t sections[3], float theta);

// Vision 2-D RoPE (spec section 4), NeoX half rotation over the whole head: with q = head_dim/4 frequencies
// inv_j = theta^(-2j/(head_dim/2)), e[0..q) = h*inv, e[q..2q) = w*inv, e[2q..4q) = e[0..2q);
// x'[d] = x[d] cos e_d - x[d+D/2] sin e_d, x'[d+D/2] = x[d+D/2] cos e_d + x[d] sin e_d for d < D/2.
void rope_2d_neox(float* x, int64_t n_tok, int64_t row_stride, int64_t n_heads, int64_t head_dim, const int32_t* pos_h,
                  const int32_t* pos_w, float theta);

}  // namespace autoglm::cpu
