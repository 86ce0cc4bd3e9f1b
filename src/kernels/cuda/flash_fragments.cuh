// kernels/cuda/flash_fragments.cuh: the register-level steps the two tensor-core flash kernels share (internal to
// kernels/cuda): attention_dense_mma.cu on mma.sync and sm90a/attention_dense_wgmma.cu on wgmma both hold a warp's 16
// query rows of S and O in the m16n8 C layout (mma.cuh): for each 8-column block j, c[j][0], c[j][1] = row g's
// columns 8j + 2t, +1 and c[j][2], c[j][3] = row g + 8's (g = lane / 4, t = lane % 4). Scores are in log2 units
// (scale * log2 e folded in), so exp2 replaces exp; softmax, sums and accumulation are F32, P is rounded to bf16.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cuda/mma.cuh"

namespace autoglm::cuda {

// min(cap, remaining) as an int (remaining > 0): the rows of a tile that exist.
__device__ __forceinline__ int rows_left(int cap, int64_t remaining) {
  return remaining < cap ? int(remaining) : cap;
}

// A warp's running softmax of its rows g and g + 8: max (log2 units) and this lane's part of the sum (its 2 of every
// 8 keys; the quad's parts share the row's max, so they are added once at the end).
struct softmax_rows {
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
};

// 2^x on the MUFU unit alone (denormal results flush to 0: weights below 2^-126 of the row's largest do not move
// an F32 sum); exp2f's denormal handling cost three more instructions per score.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// One tile of NKB 8-key blocks of raw scores s -> probabilities exp2(s * scale_log2 - max), updating r (scale_log2 >
// 0: the launchers check it, so the max of the raw scores scales to the max of the scaled ones). Masked to -inf
// first, on the tiles that need it (nk and diagonal are the same for the whole warp): keys from nk on (a partial
// last tile; nk = 8 NKB for a whole one) and, on a causal tile crossing the warp's diagonal, key i for the warp's
// row q when i > lim + q. Returns the factors (rows g, g + 8) by which O accumulated over the earlier tiles must be
// rescaled (0 on the first tile). Per score: a max, one FFMA, one MUFU exp2 and an add.
template <int NKB, bool CAUSAL>
__device__ __forceinline__ float2 online_softmax(float (&s)[NKB][4], softmax_rows& r, int nk, bool diagonal,
                                                 int64_t lim, float scale_log2) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  if (nk < 8 * NKB || (CAUSAL && diagonal)) {
#pragma unroll
    for (int j = 0; j < NKB; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int key = 8 * j + 2 * t + (c & 1);
        if (key >= nk || (CAUSAL && diagonal && key > lim + g + (c >> 1) * 8)) s[j][c] = -INFINITY;
      }
  }
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int j = 0; j < NKB; ++j) {
    mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
    mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
  }
  // The quad (lanes 4g .. 4g+3) holds the row's keys.
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  mx0 = fmaxf(r.m0, mx0 * scale_log2);
  mx1 = fmaxf(r.m1, mx1 * scale_log2);
  // Every row sees a key of the first tile (key 0), so the max is finite for finite inputs from then on; the guard
  // keeps -inf - -inf out of exp2.
  const float base0 = mx0 == -INFINITY ? 0.0f : mx0, base1 = mx1 == -INFINITY ? 0.0f : mx1;
  const float corr0 = exp2_ftz(r.m0 - base0), corr1 = exp2_ftz(r.m1 - base1);  // 0 on the first tile (m = -inf)
  r.m0 = mx0;
  r.m1 = mx1;
  float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
  for (int j = 0; j < NKB; ++j) {
    s[j][0] = exp2_ftz(fmaf(s[j][0], scale_log2, -base0));
    s[j][1] = exp2_ftz(fmaf(s[j][1], scale_log2, -base0));
    s[j][2] = exp2_ftz(fmaf(s[j][2], scale_log2, -base1));
    s[j][3] = exp2_ftz(fmaf(s[j][3], scale_log2, -base1));
    sum0 += s[j][0] + s[j][1];
    sum1 += s[j][2] + s[j][3];
  }
  r.l0 = r.l0 * corr0 + sum0;
  r.l1 = r.l1 * corr1 + sum1;
  return make_float2(corr0, corr1);
}

// O [16][8 NDB] (C layout) *= the rows' factors.
template <int NDB>
__device__ __forceinline__ void rescale_rows(float (&o)[NDB][4], float2 corr) {
#pragma unroll
  for (int j = 0; j < NDB; ++j) {
    o[j][0] *= corr.x;
    o[j][1] *= corr.x;
    o[j][2] *= corr.y;
    o[j][3] *= corr.y;
  }
}

// The A fragment (m16n8k16) of keys 16 kk .. 16 kk + 15: the C layout of two adjacent 8-key blocks is the A layout
// of one 16-key step.
template <int NKB>
__device__ __forceinline__ void pack_p(const float (&p)[NKB][4], int kk, uint32_t (&a)[4]) {
  a[0] = pack_bf16x2(p[2 * kk][0], p[2 * kk][1]);
  a[1] = pack_bf16x2(p[2 * kk][2], p[2 * kk][3]);
  a[2] = pack_bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]);
  a[3] = pack_bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3]);
}

// S [16][8 NKB] = Q K^T for a warp's 16 query rows (qa: their A fragments, one per 16 of the HD dims) against a
// shared tile of 8 NKB keys (kt: K [key][dim] bf16, row stride LD elements). B(k = dim, n = key) = K[key][dim]: the
// non-transposed ldmatrix of K's rows gives lane K[key g][dims 2t, 2t+1] = b[.] for that key block. One x4 covers 16
// keys x 16 dims: lanes 0-7 keys 0-7 dims 0-7 (b0 of key block 0), 8-15 keys 0-7 dims 8-15 (b1), 16-23 keys 8-15
// dims 0-7 (b0 of key block 1), 24-31 keys 8-15 dims 8-15 (b1).
template <int HD, int NKB, int LD>
__device__ __forceinline__ void scores_tile(float (&s)[NKB][4], const uint32_t (&qa)[HD / 16][4], const uint16_t* kt) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < NKB; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
    for (int jp = 0; jp < NKB / 2; ++jp) {
      uint32_t b[4];
      const int key = jp * 16 + (lane & 7) + ((lane >> 4) << 3);
      ldmatrix_x4(b, kt + key * LD + kk * 16 + ((lane >> 3) & 1) * 8);
      mma_bf16_16816(s[2 * jp], qa[kk], b[0], b[1]);
      mma_bf16_16816(s[2 * jp + 1], qa[kk], b[2], b[3]);
    }
  }
}

// O [16][HD] += P [16][8 NKB] . V [8 NKB][HD] (vt: V [key][dim] bf16, row stride LD), 16 keys per step. P's A
// fragment for keys 16kk .. 16kk+15 is the C fragments of key blocks 2kk (columns 2t, 2t+1 -> a[0] row g, a[1] row
// g+8) and 2kk+1 (a[2], a[3]) (pack_p). B(k = key, n = dim) = V[key][dim] row-major: ldmatrix .trans gives lane
// V[keys 2t, 2t+1][dim g]. One x4 covers 16 keys x 16 dims: lanes 0-7 keys 0-7 dims 0-7 (b0 of dim block 0), 8-15
// keys 8-15 dims 0-7 (b1), 16-23 keys 0-7 dims 8-15 (b0 of dim block 1), 24-31 keys 8-15 dims 8-15 (b1): lane L
// addresses key L % 16, dims 8 (L / 16).
template <int HD, int NKB, int LD>
__device__ __forceinline__ void pv_tile(float (&o)[HD / 8][4], const float (&p)[NKB][4], const uint16_t* vt) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kk = 0; kk < NKB / 2; ++kk) {
    uint32_t pa[4];
    pack_p(p, kk, pa);
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, vt + (kk * 16 + (lane & 15)) * LD + dp * 16 + (lane >> 4) * 8);
      mma_bf16_16816(o[2 * dp], pa, b[0], b[1]);
      mma_bf16_16816(o[2 * dp + 1], pa, b[2], b[3]);
    }
  }
}

// The warp's rows row_g = first + g and row_g + 8 of O / l, those below len only, at out row out_row + g (+ 8),
// columns col .. (the head's). As F32 (scalar stores: the output view may start at any float), or with out_bf16 as
// BF16 rounded once (out then points at BF16 rows, ldo in BF16 elements; column pairs stored as one 4-byte word: the
// host passes only views whose start and row stride keep those words aligned).
template <int NDB>
__device__ __forceinline__ void store_rows(const float (&o)[NDB][4], softmax_rows r, int64_t first, int64_t len,
                                           float* out, int64_t ldo, int64_t out_row, int64_t col, bool out_bf16) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  r.l0 += __shfl_xor_sync(0xffffffffu, r.l0, 1);
  r.l0 += __shfl_xor_sync(0xffffffffu, r.l0, 2);
  r.l1 += __shfl_xor_sync(0xffffffffu, r.l1, 1);
  r.l1 += __shfl_xor_sync(0xffffffffu, r.l1, 2);
  const float inv0 = r.l0 > 0.0f ? 1.0f / r.l0 : 0.0f, inv1 = r.l1 > 0.0f ? 1.0f / r.l1 : 0.0f;
  if (out_bf16) {
    uint16_t* base = reinterpret_cast<uint16_t*>(out) + out_row * ldo + col + 2 * t;
    if (first + g < len) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(base + int64_t(g) * ldo);
#pragma unroll
      for (int j = 0; j < NDB; ++j) dst[4 * j] = pack_bf16x2(o[j][0] * inv0, o[j][1] * inv0);
    }
    if (first + g + 8 < len) {
      uint32_t* dst = reinterpret_cast<uint32_t*>(base + int64_t(g + 8) * ldo);
#pragma unroll
      for (int j = 0; j < NDB; ++j) dst[4 * j] = pack_bf16x2(o[j][2] * inv1, o[j][3] * inv1);
    }
    return;
  }
  float* out_first = out + out_row * ldo + col;
  if (first + g < len) {
    float* dst = out_first + int64_t(g) * ldo + 2 * t;
#pragma unroll
    for (int j = 0; j < NDB; ++j) {
      dst[8 * j] = o[j][0] * inv0;
      dst[8 * j + 1] = o[j][1] * inv0;
    }
  }
  if (first + g + 8 < len) {
    float* dst = out_first + int64_t(g + 8) * ldo + 2 * t;
#pragma unroll
    for (int j = 0; j < NDB; ++j) {
      dst[8 * j] = o[j][2] * inv1;
      dst[8 * j + 1] = o[j][3] * inv1;
    }
  }
}

}  // namespace autoglm::cuda
