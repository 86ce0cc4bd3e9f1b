// tests/cuda/cuda_bf16_activations_test.cpp: the BF16 GEMM inputs of the CUDA backend (ops::gemm_input_type):
// which type a pass gets, and every op that reads or writes such an activation (LINEAR's x and y, LINEAR_SWIGLU's
// y, RMSNorm's y, the residual norm's h, SILU_MUL) against the CPU's F32 kernel on the same values: the CPU is given
// the bf16 inputs as F32 and its F32 output is what the GPU rounds once. Also ATTENTION_DENSE's BF16 out against its
// own F32 out, and LINEAR_ADD (BF16 x) against LINEAR then ADD.
// Tolerances (normalized max error): 1e-4 where the GPU's output is F32 (bf16 x times bf16/f16/f32 weights are
// exact products: only the summation order differs); 4e-3 where it is BF16 (one rounding, 2^-9 relative); 1e-2 for
// LINEAR_SWIGLU's BF16 y of the tensor-core path, whose gate and up are rounded to bf16 before the gate (torch's
// bf16 MLP).
#include <gtest/gtest.h>

#include <array>

#include "cuda_test_util.h"

using namespace autoglm;
using namespace autoglm::cuda_test;

namespace {

constexpr double k_f32_out_tol = 1e-4;
constexpr double k_bf16_out_tol = 4e-3;
constexpr double k_swiglu_bf16_tol = 1e-2;

class cuda_bf16_activations : public cuda_fixture {
 protected:
  void TearDown() override {
    if (gpu_) gpu().arena().reset();
    if (cpu_) cpu().arena().reset();
  }
};

// The values a BF16 tensor holds (round to nearest even), as floats.
std::vector<float> rounded(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
  return r;
}

// [rows, cols] of `type` on ctx holding v, as a column view at column `lead` of a buffer `pad` columns wider
// (lead = pad = 0: contiguous).
tensor placed(exec_context& ctx, dtype type, const std::vector<float>& v, int64_t rows, int64_t cols, int64_t lead = 0,
              int64_t pad = 0) {
  std::vector<float> all(size_t(rows * (cols + pad)), -3.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) all[size_t(r * (cols + pad) + lead + c)] = v[size_t(r * cols + c)];
  const tensor buf = on(ctx, host_tensor(type, {rows, cols + pad}, all));
  tensor t = buf.cols_view(lead, cols);
  t.set_owner(buf.owner());
  return t;
}

}  // namespace

TEST_F(cuda_bf16_activations, gemm_passes_take_bf16_decode_steps_and_split_precision_f32) {
  EXPECT_EQ(ops::gemm_input_type(cpu(), 4096), dtype::F32);
  EXPECT_EQ(ops::gemm_input_type(gpu(), 1), dtype::F32);
  EXPECT_EQ(ops::gemm_input_type(gpu(), 8), dtype::F32);  // the GEMV's rows
  EXPECT_EQ(ops::gemm_input_type(gpu(), 9), dtype::BF16);
  EXPECT_EQ(ops::gemm_input_type(gpu(), 13416), dtype::BF16);
  const gemm_precision_scope split(true);
  EXPECT_EQ(ops::gemm_input_type(gpu(), 13416), dtype::F32);
}

TEST_F(cuda_bf16_activations, linear_takes_and_gives_bf16_on_the_gemv_and_the_gemm) {
  struct shape {
    int64_t m, n, k;
  };
  const std::vector<shape> shapes = {{1, 7, 13}, {5, 37, 129}, {8, 64, 256}, {9, 30, 5607}, {64, 67, 96},
                                     {257, 128, 1536}};
  for (dtype wt : {dtype::BF16, dtype::F16, dtype::F32})
    for (const shape& sh : shapes)
      for (int mode = 0; mode < 3; ++mode) {  // 0: x BF16; 1: y BF16; 2: both
        const bool x16 = mode != 1, y16 = mode != 0;
        for (bool bias : {false, true}) {
          const uint64_t seed = uint64_t(sh.m * 7 + sh.n * 3 + sh.k + mode);
          const std::vector<float> x = rounded(normal(size_t(sh.m * sh.k), seed)),
                                   w = normal(size_t(sh.n * sh.k), seed + 1, 0.2f), b = normal(size_t(sh.n), seed + 2);
          std::vector<float> out[2];
          exec_context* ctxs[2] = {&cpu(), &gpu()};
          for (int i = 0; i < 2; ++i) {
            exec_context& ctx = *ctxs[i];
            const bool gpu_side = i == 1;
            linear_weight lw;
            lw.weight = ops::prepare_weight(ctx, host_tensor(wt, {sh.n, sh.k}, w));
            if (bias) lw.bias = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {sh.n}, b));
            lw.name = "test.linear";
            const tensor xt = placed(ctx, gpu_side && x16 ? dtype::BF16 : dtype::F32, x, sh.m, sh.k);
            // A BF16 y as a column view two columns into a wider buffer (strided, 4-byte offset).
            tensor y = gpu_side && y16 ? placed(ctx, dtype::BF16, std::vector<float>(size_t(sh.m * sh.n)), sh.m, sh.n, 2, 6)
                                       : ops::scratch(ctx, dtype::F32, {sh.m, sh.n});
            ops::linear(ctx, xt, lw, y);
            out[i] = values(ctx, y);
          }
          // The GEMM (> 8 rows) rounds an F32 x of a 16-bit weight; a BF16 x is already rounded, so only the
          // weight type and y's rounding matter.
          const double tol = y16 ? k_bf16_out_tol : k_f32_out_tol;
          EXPECT_LE(norm_error(out[1], out[0]), tol)
              << dtype_name(wt) << " m=" << sh.m << " n=" << sh.n << " k=" << sh.k << (x16 ? " x bf16" : "")
              << (y16 ? " y bf16" : "") << (bias ? " bias" : "");
        }
      }
}

TEST_F(cuda_bf16_activations, norms_write_bf16_rows) {
  // {rows, cols, h's lead column}: float4 rows (aligned), rows the float4 kernels refuse (width, or a BF16 view
  // that is not 8-byte aligned).
  const std::vector<std::array<int64_t, 3>> cases = {{1, 4096, 0}, {3, 100, 0}, {5, 1534, 0}, {130, 1536, 0},
                                                     {9, 1536, 1}};
  for (const auto& [m, n, lead] : cases) {
    const std::vector<float> x = normal(size_t(m * n), uint64_t(m + n), 3.0f), y = normal(size_t(m * n), 4),
                             wp = normal(size_t(n), 5), wn = normal(size_t(n), 6);
    std::vector<float> h_rms[2], h_res[2], x_res[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      const dtype ht = i == 1 ? dtype::BF16 : dtype::F32;
      const tensor wpt = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {n}, wp));
      const tensor wnt = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {n}, wn));
      const tensor xt = on(ctx, host_tensor(dtype::F32, {m, n}, x));
      tensor h = placed(ctx, ht, std::vector<float>(size_t(m * n)), m, n, lead, lead ? 3 : 0);
      ops::rms_norm(ctx, xt, wpt, 1e-5f, h);
      h_rms[i] = values(ctx, h);
      tensor xr = on(ctx, host_tensor(dtype::F32, {m, n}, x));
      const tensor yt = on(ctx, host_tensor(dtype::F32, {m, n}, y));
      tensor h2 = placed(ctx, ht, std::vector<float>(size_t(m * n)), m, n, lead, lead ? 3 : 0);
      ops::residual_rms_norm(ctx, xr, yt, wpt, wnt, 1e-5f, h2);
      h_res[i] = values(ctx, h2);
      x_res[i] = values(ctx, xr);
    }
    EXPECT_LE(norm_error(h_rms[1], h_rms[0]), k_bf16_out_tol) << "rms_norm " << m << "x" << n << " lead " << lead;
    EXPECT_LE(norm_error(h_res[1], h_res[0]), k_bf16_out_tol) << "residual h " << m << "x" << n << " lead " << lead;
    EXPECT_LE(norm_error(x_res[1], x_res[0]), 1e-5) << "residual x " << m << "x" << n;  // x stays F32
  }
}

TEST_F(cuda_bf16_activations, silu_mul_and_linear_swiglu_give_bf16) {
  // silu_mul on gate | up column views of one BF16 buffer: 16-byte vectors (n % 8 == 0) and single elements.
  for (const auto& [m, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 8}, {3, 13}, {17, 4096}, {40, 1000}}) {
    const std::vector<float> gu = rounded(normal(size_t(m * 2 * n), uint64_t(m * n), 2.0f));
    std::vector<float> out[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      const dtype t = i == 1 ? dtype::BF16 : dtype::F32;
      const tensor g = placed(ctx, t, gu, m, 2 * n);
      tensor o = ops::scratch(ctx, t, {m, n});
      ops::silu_mul(ctx, g.cols_view(0, n), g.cols_view(n, n), o);
      out[i] = values(ctx, o);
    }
    EXPECT_LE(norm_error(out[1], out[0]), k_bf16_out_tol) << "silu_mul " << m << "x" << n;
  }
  // linear_swiglu with a BF16 x and y: the GEMV (<= 8 rows, F32 inside) and the tensor-core GEMM.
  for (const auto& [m, n, k] : std::vector<std::array<int64_t, 3>>{{3, 96, 200}, {33, 160, 256}, {300, 512, 1024}}) {
    const std::vector<float> x = rounded(normal(size_t(m * k), uint64_t(m + k))),
                             w = normal(size_t(2 * n * k), uint64_t(n), 0.1f);
    std::vector<float> out[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      const dtype t = i == 1 ? dtype::BF16 : dtype::F32;
      linear_weight lw;
      lw.weight = ops::prepare_weight(ctx, host_tensor(dtype::BF16, {2 * n, k}, w));
      lw.name = "test.gate_up";
      const tensor xt = placed(ctx, t, x, m, k);
      tensor tmp = ops::scratch(ctx, dtype::F32, {m, 2 * n}), y = ops::scratch(ctx, t, {m, n});
      ops::linear_swiglu(ctx, xt, lw, tmp, y);
      out[i] = values(ctx, y);
    }
    EXPECT_LE(norm_error(out[1], out[0]), m > 8 ? k_swiglu_bf16_tol : k_bf16_out_tol)
        << "linear_swiglu " << m << "x" << n << "x" << k;
  }
}

TEST_F(cuda_bf16_activations, rope_2d_and_dense_attention_take_bf16_q_k_v) {
  // The vision tower's layout: q | k | v of `heads` heads side by side in one BF16 buffer; rope_2d on the q and k
  // views, then attention over two segments: a small image (the F32 kernel over F32 copies) and one past 1024 rows
  // (the tensor-core kernels, which read the BF16 rows as they are). Segment lengths are not multiples of any tile;
  // rows past the last segment keep their sentinel.
  struct dense_case {
    int64_t n, heads, hd;
    std::vector<int32_t> seg;
    double tol;
  };
  const std::vector<dense_case> cases = {{300, 3, 128, {0, 120, 299}, 1e-4}, {2300, 2, 128, {0, 1100, 2290}, 2e-2}};
  for (const dense_case& c : cases) {
    const int64_t w = c.heads * c.hd;
    const std::vector<float> qkv = rounded(normal(size_t(c.n * 3 * w), uint64_t(c.n), 0.5f));
    std::vector<int32_t> pos(size_t(2 * c.n));
    for (int64_t i = 0; i < c.n; ++i) {
      pos[size_t(i)] = int32_t(i / 37);
      pos[size_t(c.n + i)] = int32_t(i % 37);
    }
    std::vector<float> roped[2], out[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      const dtype t = i == 1 ? dtype::BF16 : dtype::F32;
      tensor f = placed(ctx, t, qkv, c.n, 3 * w);
      const tensor p = on(ctx, host_i32({2, c.n}, pos));
      tensor q = f.cols_view(0, w), k = f.cols_view(w, w);
      ops::rope_2d(ctx, q, int32_t(c.heads), int32_t(c.hd), p, 10000.0f);
      ops::rope_2d(ctx, k, int32_t(c.heads), int32_t(c.hd), p, 10000.0f);
      roped[i] = values(ctx, f.cols_view(0, 2 * w));
      if (i == 0) {  // the CPU attends over what the GPU holds: its rotated q and k rounded to bf16
        std::vector<float> r = rounded(roped[0]);
        std::vector<float> all = qkv;
        for (int64_t row = 0; row < c.n; ++row)
          std::copy(r.begin() + row * 2 * w, r.begin() + (row + 1) * 2 * w, all.begin() + row * 3 * w);
        f = placed(ctx, t, all, c.n, 3 * w);
      }
      tensor o = placed(ctx, dtype::F32, std::vector<float>(size_t(c.n * w), -7.0f), c.n, w, 1, 2);
      ops::attention_dense(ctx, f.cols_view(0, w), f.cols_view(w, w), f.cols_view(2 * w, w), int32_t(c.heads),
                           int32_t(c.hd), on(ctx, host_i32({int64_t(c.seg.size())}, c.seg)),
                           1.0f / std::sqrt(float(c.hd)), o);
      out[i] = values(ctx, o);
    }
    EXPECT_LE(norm_error(roped[1], roped[0]), k_bf16_out_tol) << "rope_2d n=" << c.n;
    EXPECT_LE(norm_error(out[1], out[0]), c.tol) << "attention_dense n=" << c.n;
  }
}

TEST_F(cuda_bf16_activations, dense_attention_writes_a_bf16_out_as_its_f32_out_rounded) {
  // Into a BF16 out (the vision tower's projection input): the tensor-core kernels round O as they store it, so an
  // aligned BF16 out holds exactly the F32 out rounded (n = 2300); the F32 kernel (n = 300) goes through F32 rows
  // and COPY: the same. An out view starting one element in (its column pairs off 4-byte words) takes the F32
  // kernel on F32 copies: within the tensor-core tolerance of the F32 out. Rows outside every segment keep their
  // sentinel in all three.
  struct dense_case {
    int64_t n, heads;
    std::vector<int32_t> seg;
  };
  const std::vector<dense_case> cases = {{300, 3, {0, 120, 299}}, {2300, 2, {0, 1100, 2290}}};
  for (const dense_case& c : cases) {
    exec_context& ctx = gpu();
    const int64_t hd = 128, w = c.heads * hd;
    const tensor f = placed(ctx, dtype::BF16, rounded(normal(size_t(c.n * 3 * w), uint64_t(c.n) + 5, 0.5f)), c.n,
                            3 * w);
    const tensor seg = on(ctx, host_i32({int64_t(c.seg.size())}, c.seg));
    const std::vector<float> sentinel(size_t(c.n * w), -7.0f);
    auto attend = [&](tensor o) {
      ops::attention_dense(ctx, f.cols_view(0, w), f.cols_view(w, w), f.cols_view(2 * w, w), int32_t(c.heads),
                           int32_t(hd), seg, 1.0f / std::sqrt(float(hd)), o);
      return values(ctx, o);
    };
    const std::vector<float> f32 = attend(placed(ctx, dtype::F32, sentinel, c.n, w, 1, 2));
    const std::vector<float> bf16 = attend(placed(ctx, dtype::BF16, sentinel, c.n, w));
    const std::vector<float> odd = attend(placed(ctx, dtype::BF16, sentinel, c.n, w, 1, 3));
    const std::vector<float> want = rounded(f32);
    size_t differ = 0;
    for (size_t i = 0; i < want.size(); ++i) differ += bf16[i] != want[i];
    EXPECT_EQ(differ, 0u) << "n=" << c.n << ": BF16 out differs from the F32 out rounded";
    EXPECT_LE(norm_error(odd, f32), 2e-2) << "n=" << c.n << ", unaligned BF16 out";
    const int64_t end = c.seg.back();
    for (int64_t r = end; r < c.n; ++r)
      for (int64_t j = 0; j < w; j += 37) {
        EXPECT_EQ(bf16[size_t(r * w + j)], -7.0f) << "row " << r << " outside the segments";
        EXPECT_EQ(odd[size_t(r * w + j)], -7.0f) << "row " << r << " outside the segments (unaligned)";
      }
  }
}

TEST_F(cuda_bf16_activations, linear_add_adds_the_product_into_y) {
  // LINEAR_ADD (the vision tower's projection and MLP down, added into the residual stream) against LINEAR into a
  // separate buffer then ADD, on the GPU: cuBLAS adding into y (9 and 257 rows, no bias), the product first (3 rows:
  // the GEMV; 64 rows with a bias). BF16 and F32 x; F32 sums in another order only: the F32 bound.
  struct shape {
    int64_t m, n, k;
    bool bias;
  };
  const std::vector<shape> shapes = {{3, 37, 129, false}, {9, 30, 560, false}, {64, 67, 96, true},
                                     {257, 128, 1536, false}};
  exec_context& ctx = gpu();
  for (const shape& sh : shapes)
    for (dtype xt : {dtype::BF16, dtype::F32}) {
      const uint64_t seed = uint64_t(sh.m * 11 + sh.n + sh.k);
      const std::vector<float> x = rounded(normal(size_t(sh.m * sh.k), seed)),
                               w = normal(size_t(sh.n * sh.k), seed + 1, 0.2f), b = normal(size_t(sh.n), seed + 2),
                               y0 = normal(size_t(sh.m * sh.n), seed + 3);
      linear_weight lw;
      lw.weight = ops::prepare_weight(ctx, host_tensor(dtype::BF16, {sh.n, sh.k}, w));
      if (sh.bias) lw.bias = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {sh.n}, b));
      lw.name = "test.linear_add";
      const tensor xv = placed(ctx, xt, x, sh.m, sh.k);
      tensor fused = placed(ctx, dtype::F32, y0, sh.m, sh.n, 1, 3), apart = placed(ctx, dtype::F32, y0, sh.m, sh.n);
      tensor tmp = ops::scratch(ctx, dtype::F32, {sh.m, sh.n});
      ops::linear_add(ctx, xv, lw, tmp, fused);
      tensor prod = ops::scratch(ctx, dtype::F32, {sh.m, sh.n});
      ops::linear(ctx, xv, lw, prod);
      ops::add(ctx, apart, prod);
      EXPECT_LE(norm_error(values(ctx, fused), values(ctx, apart)), 1e-5)
          << "m=" << sh.m << " n=" << sh.n << " k=" << sh.k << (sh.bias ? " bias" : "") << " x " << dtype_name(xt);
      ctx.arena().reset();
    }
}
