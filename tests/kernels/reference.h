// tests/kernels/reference.h: plain C++ references of every op, written for clarity, accumulating in double. They
// share no code with src/kernels: rounding to F16/BF16 is done here from first principles, and where a kernel
// reproduces Hugging Face's fp32 formulas on purpose (RoPE angles, grid_sample's coordinates) the reference
// states those formulas and evaluates the rest in double.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace autoglm::harness::ref {

using vecd = std::vector<double>;
using vecf = std::vector<float>;

// x rounded to the nearest value of `type` (ties to even; overflow to infinity): F32, F16, BF16; I32 truncates
// toward zero with saturation (NaN -> 0).
double round_to(dtype type, double x);

// y [m, n] = x [m, k] . w [n, k]^T + bias [n] (bias may be empty).
vecd linear(const vecf& x, const vecf& w, const vecf& bias, int64_t m, int64_t n, int64_t k);
// x [m, k] as the quantized LINEAR kernels see it (kernels/cpu/quant_linear.h): per group of `group` elements,
// d = amax / 127 and q = round-half-even(x * (127 / amax)) in float, clamped to +-127; returns q * d in double.
vecd quantize_activations(const vecf& x, int64_t m, int64_t k, int64_t group);
// Values of x stored as Q8_0 by ggml's rule (32 at a time): d = amax / 127, q = round(x * (1 / d)) half away from
// zero, d rounded to f16; returns f16(d) * q.
vecd round_q8_0(const vecf& x);
// y [m, n] = xq [m, k] . w [n, k]^T + bias, all in double (xq from quantize_activations, w dequantized).
vecd linear_d(const vecd& xq, const vecf& w, const vecf& bias, int64_t m, int64_t n, int64_t k);
vecd rms_norm(const vecf& x, const vecf& w, int64_t m, int64_t n, double eps);
vecd layer_norm(const vecf& x, const vecf& w, const vecf& b, int64_t m, int64_t n, double eps);

// HF's fp32 inverse frequencies 1 / theta^(2i/dim), i < dim/2.
vecf rope_inv_freq(int64_t dim, float theta);
// x [n, width] rotated in place (heads at columns h*head_dim); pos [3][n] / [2][n].
void rope_mrope(vecd& x, int64_t n, int64_t width, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                const std::vector<int32_t>& pos, const std::array<int32_t, 3>& sections, float theta);
void rope_2d(vecd& x, int64_t n, int64_t width, int64_t n_heads, int64_t head_dim, const std::vector<int32_t>& pos,
             float theta);

double silu(double g);
double gelu_erf(double x);
// Rows of x [m, n]: softmax(x * scale).
vecd softmax(const vecf& x, int64_t m, int64_t n, double scale);

// One sequence's causal attention: q [n_new, n_heads*hd] at positions n_past.., over keys/values k, v
// [n_past + n_new, n_kv_heads*hd] in position order. Returns [n_new, n_heads*hd].
vecd attention_causal(const vecf& q, const vecf& k, const vecf& v, int64_t n_new, int64_t n_past, int64_t n_heads,
                      int64_t n_kv_heads, int64_t hd, double scale);
// Bidirectional attention of rows [r0, r1) among themselves; q, k, v [n, n_heads*hd]; writes out rows [r0, r1).
void attention_block(const vecf& q, const vecf& k, const vecf& v, int64_t r0, int64_t r1, int64_t n_heads, int64_t hd,
                     double scale, vecd& out);

// Cross-attention: every row of q [nq, n_heads*hd] over all nk rows of k, v [nk, n_kv_heads*hd] (GQA: head h reads
// KV head h / (n_heads / n_kv_heads)). Returns [nq, n_heads*hd]; zeros when nk = 0.
vecd attention_cross(const vecf& q, const vecf& k, const vecf& v, int64_t nq, int64_t nk, int64_t n_heads,
                     int64_t n_kv_heads, int64_t hd, double scale);
// A 1-D convolution as PyTorch's Conv1d computes it: x [t_in, c_in] (time-major), w [c_out, c_in, ks], bias [c_out]
// (may be empty), zero padding `pad` on both sides. Returns [t_out, c_out].
vecd conv1d(const vecf& x, const vecf& w, const vecf& bias, int64_t t_in, int64_t c_in, int64_t c_out, int64_t ks,
            int64_t stride, int64_t pad);

// grid_sample(bicubic, align_corners=False, border) of table [g*g, d] at patch (h, w) of a (grid_h, grid_w) grid.
// The grid coordinate is HF's fp32 expression; everything after it is in double.
vecd pos_embed_bicubic(const vecf& table, int32_t g, int64_t d, int32_t grid_h, int32_t grid_w,
                       const std::vector<int32_t>& pos_h, const std::vector<int32_t>& pos_w);

}  // namespace autoglm::harness::ref
