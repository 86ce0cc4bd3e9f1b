// tests/cuda/cuda_ops_test.cpp: every CUDA op against the CPU backend's kernel on the same random inputs, through
// ops (so dispatch is the model's), with the shapes and layouts the CUDA kernels treat specially: the GEMV / GEMM
// boundary (8 rows), W rows that are not 16-byte aligned, x / y as strided column views, in-place norms, paged
// attention on one split and on several (long decode contexts) with several sequences, dense attention over
// segments, bit-exact data movement (copy with NaN/inf/overflow/I32 saturation, kv_store, embedding).
// Tolerances (normalized max error against the CPU): 1e-5 where both compute in F32 (a different summation order
// only); 1e-2 for LINEAR on F16/BF16 weights with more than 8 rows, which rounds x to the weight's type (torch's
// bf16 linear), 5e-5 for the same with split precision (x as hi + lo); 2e-2 for dense attention of large images on
// tensor cores (bf16 q, k, v and weights); 0 for data movement. (The kernel harness, tests/kernels, runs the same ops against a double
// reference on every registered backend, cuda:0 included.)
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <numeric>

#include "autoglm/bulk_allocator.h"
#include "cuda_test_util.h"
#include "media/glm4v_preprocess.h"

using namespace autoglm;
using namespace autoglm::cuda_test;

namespace {

constexpr double k_f32_tol = 1e-5;
constexpr double k_bf16_gemm_tol = 1e-2;
constexpr double k_split_gemm_tol = 5e-5;  // x as hi + lo in the weight's type: about 2^-17 per product
constexpr double k_bf16_attention_tol = 2e-2;  // q, k, v and the softmax weights rounded to bf16

class cuda_ops : public cuda_fixture {
 protected:
  void TearDown() override {
    if (gpu_) gpu().arena().reset();
    if (cpu_) cpu().arena().reset();
  }
};

// A [rows, cols] F32 view inside a buffer of rows x (cols + pad) starting `lead` elements in, on ctx.
tensor strided_f32(exec_context& ctx, const std::vector<float>& v, int64_t rows, int64_t cols, int64_t pad,
                   int64_t lead) {
  std::vector<float> all(size_t(lead + rows * (cols + pad)), -7.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) all[size_t(lead + r * (cols + pad) + c)] = v[size_t(r * cols + c)];
  const tensor buf = on(ctx, host_tensor(dtype::F32, {int64_t(all.size())}, all));
  tensor t = tensor::strided(static_cast<float*>(buf.data()) + lead, dtype::F32, {rows, cols},
                             {(cols + pad) * 4, 4}, ctx.dev());
  t.set_owner(buf.owner());
  return t;
}

struct linear_case {
  dtype wt;
  int64_t m, n, k;
  bool bias, strided;
};

void check_linear(exec_context& cpu_ctx, exec_context& gpu_ctx, const linear_case& c, bool split = false) {
  const uint64_t seed = uint64_t(c.m * 131 + c.n * 17 + c.k) + uint64_t(c.wt);
  const std::vector<float> x = normal(size_t(c.m * c.k), seed), w = normal(size_t(c.n * c.k), seed + 1, 0.2f),
                           b = normal(size_t(c.n), seed + 2);
  std::vector<float> out[2];
  exec_context* ctxs[2] = {&cpu_ctx, &gpu_ctx};
  for (int i = 0; i < 2; ++i) {
    exec_context& ctx = *ctxs[i];
    linear_weight lw;
    lw.weight = ops::prepare_weight(ctx, host_tensor(c.wt, {c.n, c.k}, w));  // uploaded on the GPU
    if (c.bias) lw.bias = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {c.n}, b));
    lw.name = "test.linear";
    const tensor xt = c.strided ? strided_f32(ctx, x, c.m, c.k, 3, 1) : on(ctx, host_tensor(dtype::F32, {c.m, c.k}, x));
    tensor y = c.strided ? strided_f32(ctx, std::vector<float>(size_t(c.m * c.n), 0.0f), c.m, c.n, 5, 2)
                         : ops::scratch(ctx, dtype::F32, {c.m, c.n});
    ops::linear(ctx, xt, lw, y);
    out[i] = values(ctx, y);
  }
  const double tol = c.m > 8 && c.wt != dtype::F32 ? (split ? k_split_gemm_tol : k_bf16_gemm_tol) : k_f32_tol;
  EXPECT_LE(norm_error(out[1], out[0]), tol) << dtype_name(c.wt) << " m=" << c.m << " n=" << c.n << " k=" << c.k
                                             << (c.bias ? " bias" : "") << (c.strided ? " strided" : "");
}

TEST_F(cuda_ops, linear_gemv_and_gemm_match_the_cpu) {
  const std::vector<std::array<int64_t, 3>> shapes = {
      {1, 1, 1},    {1, 7, 13},   {2, 9, 64},   {3, 16, 180}, {4, 5, 8},     {5, 37, 129},  {8, 33, 1000},
      {1, 300, 4096}, {1, 256, 13696}, {9, 30, 5607}, {17, 130, 257}, {64, 67, 96}, {257, 50, 100},
  };
  for (dtype wt : {dtype::BF16, dtype::F16, dtype::F32})
    for (const auto& s : shapes)
      for (bool strided : {false, true}) check_linear(cpu(), gpu(), {wt, s[0], s[1], s[2], s[0] % 2 == 1, strided});
}

TEST_F(cuda_ops, linear_gemm_with_split_precision_is_near_f32) {
  const gemm_precision_scope split(true);
  for (dtype wt : {dtype::BF16, dtype::F16})
    for (const auto& s : std::vector<std::array<int64_t, 3>>{{9, 30, 5607}, {64, 67, 96}, {257, 50, 100}, {300, 512, 2048}})
      check_linear(cpu(), gpu(), {wt, s[0], s[1], s[2], true, true}, true);
}

// ops::prefetch is a hint: the GEMV after it gives the same bytes as without it, for a weight that starts off a
// 16-byte boundary (a row view of 1,023-element BF16 rows) and one larger than the L2 (the hint takes a part); an
// empty weight and any weight on the CPU are nothing to do.
TEST_F(cuda_ops, a_prefetch_hint_changes_no_result) {
  for (const auto& [n, k] : std::vector<std::pair<int64_t, int64_t>>{{301, 1023}, {12288, 4096}}) {
    const std::vector<float> x = normal(size_t(k), 5), w = normal(size_t((n + 1) * k), 6, 0.2f);
    linear_weight lw;
    lw.weight = ops::prepare_weight(gpu(), host_tensor(dtype::BF16, {n + 1, k}, w)).rows_view(1, n);
    lw.name = "test.prefetch";
    const tensor xt = on(gpu(), host_tensor(dtype::F32, {1, k}, x));
    std::vector<float> out[2];
    for (int with = 0; with < 2; ++with) {
      tensor y = ops::scratch(gpu(), dtype::F32, {1, n});
      if (with) ops::prefetch(gpu(), lw);
      ops::linear(gpu(), xt, lw, y);
      out[with] = values(gpu(), y);
    }
    EXPECT_EQ(out[0], out[1]) << "n=" << n << " k=" << k;
  }
  ops::prefetch(gpu(), linear_weight{});
  linear_weight host_w;
  host_w.weight = ops::prepare_weight(cpu(), host_tensor(dtype::BF16, {4, 8}, normal(32, 7)));
  ops::prefetch(cpu(), host_w);
  ops::synchronize(gpu());
}

TEST_F(cuda_ops, norms_match_the_cpu_in_place_and_strided) {
  for (const auto& [m, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 100}, {7, 4096}, {130, 1536}}) {
    const std::vector<float> x = normal(size_t(m * n), uint64_t(m + n), 3.0f), w = normal(size_t(n), 5),
                             b = normal(size_t(n), 6);
    std::vector<float> rms[2], ln[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      const tensor wt = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {n}, w));
      const tensor bt = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {n}, b));
      tensor xs = strided_f32(ctx, x, m, n, 2, 1);
      ops::rms_norm(ctx, xs, wt, 1e-5f, xs);  // in place on a strided view
      rms[i] = values(ctx, xs);
      tensor xl = on(ctx, host_tensor(dtype::F32, {m, n}, x));
      tensor yl = ops::scratch(ctx, dtype::F32, {m, n});
      ops::layer_norm(ctx, xl, wt, bt, 1e-6f, yl);
      ln[i] = values(ctx, yl);
    }
    EXPECT_LE(norm_error(rms[1], rms[0]), k_f32_tol) << "rms_norm " << m << "x" << n;
    EXPECT_LE(norm_error(ln[1], ln[0]), k_f32_tol) << "layer_norm " << m << "x" << n;
  }
}

TEST_F(cuda_ops, rope_matches_the_cpu) {
  // M-RoPE with GLM's sections on q inside a fused buffer; 2-D RoPE with the vision tower's layout. Positions up
  // to 30000 (the angle's fp32 product must be the CPU's).
  const int64_t n = 37, heads = 3, hd = 64, rot = 32;
  const std::vector<float> x = normal(size_t(n * (heads * hd + 10)), 9);
  std::vector<int32_t> pos3(size_t(3 * n)), pos2(size_t(2 * n));
  for (int64_t i = 0; i < n; ++i) {
    pos3[size_t(i)] = int32_t(i * 811 % 30000);
    pos3[size_t(n + i)] = int32_t(i % 7);
    pos3[size_t(2 * n + i)] = int32_t(i % 5);
    pos2[size_t(i)] = int32_t(i / 6);
    pos2[size_t(n + i)] = int32_t(i % 6);
  }
  std::vector<float> m_out[2], r_out[2];
  exec_context* ctxs[2] = {&cpu(), &gpu()};
  for (int i = 0; i < 2; ++i) {
    exec_context& ctx = *ctxs[i];
    tensor xm = strided_f32(ctx, x, n, heads * hd + 10, 0, 0).cols_view(0, heads * hd);
    ops::rope_mrope(ctx, xm, int32_t(heads), int32_t(hd), int32_t(rot), on(ctx, host_i32({3, n}, pos3)), {8, 4, 4},
                    10000.0f);
    m_out[i] = values(ctx, xm);
    tensor xr = on(ctx, host_tensor(dtype::F32, {n, heads * hd}, std::vector<float>(x.begin(), x.begin() + n * heads * hd)));
    ops::rope_2d(ctx, xr, int32_t(heads), int32_t(hd), on(ctx, host_i32({2, n}, pos2)), 10000.0f);
    r_out[i] = values(ctx, xr);
  }
  EXPECT_LE(norm_error(m_out[1], m_out[0]), k_f32_tol);
  EXPECT_LE(norm_error(r_out[1], r_out[0]), k_f32_tol);
}

TEST_F(cuda_ops, activations_and_softmax_match_the_cpu) {
  const int64_t m = 5, n = 333;
  const std::vector<float> gu = normal(size_t(m * 2 * n), 11, 2.0f), y = normal(size_t(m * n), 12);
  std::vector<float> sm_in = normal(size_t(m * n), 13, 4.0f);
  for (int64_t j = 0; j < n; ++j) sm_in[size_t(2 * n + j)] = -INFINITY;  // a fully masked row: zeros
  std::vector<float> out[4][2];
  exec_context* ctxs[2] = {&cpu(), &gpu()};
  for (int i = 0; i < 2; ++i) {
    exec_context& ctx = *ctxs[i];
    const tensor g = on(ctx, host_tensor(dtype::F32, {m, 2 * n}, gu));
    tensor o = ops::scratch(ctx, dtype::F32, {m, n});
    ops::silu_mul(ctx, g.cols_view(0, n), g.cols_view(n, n), o);
    out[0][i] = values(ctx, o);
    tensor x = on(ctx, host_tensor(dtype::F32, {m, n}, y));
    ops::gelu(ctx, x);
    out[1][i] = values(ctx, x);
    ops::add(ctx, x, g.cols_view(n, n));
    out[2][i] = values(ctx, x);
    tensor s = on(ctx, host_tensor(dtype::F32, {m, n}, sm_in));
    ops::softmax(ctx, s, 0.3f);
    out[3][i] = values(ctx, s);
  }
  const char* names[4] = {"silu_mul", "gelu", "add", "softmax"};
  for (int k = 0; k < 4; ++k) EXPECT_LE(norm_error(out[k][1], out[k][0]), k_f32_tol) << names[k];
}

TEST_F(cuda_ops, data_movement_is_bit_exact) {
  // Special values through every conversion: NaN, infinities, F16 overflow and subnormals, I32 saturation.
  std::vector<float> special = normal(64, 21, 100.0f);
  const float extra[] = {NAN, INFINITY, -INFINITY, 65520.0f, -70000.0f, 3e-8f, -6e-5f, 3e9f, -3e9f, 2.5f, -2.5f, 0.0f};
  std::copy(std::begin(extra), std::end(extra), special.begin());
  for (dtype st : {dtype::F32, dtype::F16, dtype::BF16, dtype::I32})
    for (dtype dt : {dtype::F32, dtype::F16, dtype::BF16, dtype::I32}) {
      std::vector<uint8_t> got[2];
      exec_context* ctxs[2] = {&cpu(), &gpu()};
      for (int i = 0; i < 2; ++i) {
        exec_context& ctx = *ctxs[i];
        const tensor src = on(ctx, host_tensor(st, {8, 8}, special));
        // A transpose: the strided path, not a memcpy.
        const tensor srcT = tensor::strided(src.data(), st, {8, 8}, {src.stride(1), src.stride(0)}, ctx.dev());
        tensor dst = ops::alloc_persistent(ctx, dt, {8, 8});
        ops::copy(ctx, srcT, dst);
        got[i] = bytes_of(ctx, dst);
      }
      EXPECT_EQ(got[1], got[0]) << dtype_name(st) << " -> " << dtype_name(dt);
    }
  // The embedding gather of F16/BF16/F32 tables into a strided output.
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
    const std::vector<float> table = normal(50 * 13, 22);
    const std::vector<int32_t> ids = {49, 0, 49, 7, 13, 2};
    std::vector<float> got[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      tensor o = strided_f32(ctx, std::vector<float>(6 * 13, 0.0f), 6, 13, 3, 1);
      ops::embedding(ctx, on(ctx, host_tensor(t, {50, 13}, table)), on(ctx, host_i32({6}, ids)), o);
      got[i] = values(ctx, o);
    }
    EXPECT_EQ(got[1], got[0]) << "embedding " << dtype_name(t);
  }
}

// An upload from an image's pixel array (a bulk_allocator block of 4 MiB or more) page-locks the block (bulk_pin)
// and copies it asynchronously, then waits: the device holds the source's bytes, and the source may be written
// again as soon as to_device returns (the contract of a pageable upload). The block stays locked for the next image.
TEST_F(cuda_ops, uploads_from_a_pixel_array_page_lock_it_and_leave_it_reusable) {
  const size_t n = size_t(6) << 20;  // 24 MB of floats
  pixel_array px(n);
  for (size_t i = 0; i < n; ++i) px[i] = float(int64_t(i % 1000003) - 500000) * 0.25f;
  exec_context& ctx = gpu();
  ctx.arena().reset();
  const tensor d = ops::to_device(ctx, tensor::view(px.data(), dtype::F32, {int64_t(n / 1176), 1176}));
  std::fill(px.begin(), px.end(), -1.0f);  // right after the return: must not reach the device copy
  EXPECT_TRUE(bulk_pin(px.data()));        // locked by the upload (already: no second lock)
  std::vector<float> back(size_t(d.n_elements()));
  ops::to_host(ctx, d, back.data(), back.size() * sizeof(float));
  size_t bad = 0;
  for (size_t i = 0; i < back.size(); ++i) bad += back[i] != float(int64_t(i % 1000003) - 500000) * 0.25f;
  EXPECT_EQ(bad, 0u);
  ctx.arena().reset();
}

// IMAGE_PATCHES: the patch rows a GPU makes from a decoded image (its resize taps and byte table: glm4v_raw_image)
// are glm4v_preprocess's on the host, bit for bit as F32 and rounded once as BF16: downscaled (a phone screenshot's
// aspect), upscaled below min_pixels, already the target size (no pass), one axis only; both HF backends.
TEST_F(cuda_ops, image_patches_equal_the_hosts_preprocessing) {
  struct image_case {
    int32_t w, h;
    int64_t max_pixels;
  };
  const image_case cases[] = {{1080, 2400, 28 * 28 * 1200}, {30, 20, 28 * 28 * 15000}, {168, 112, 28 * 28 * 15000},
                              {168, 100, 28 * 28 * 15000}, {701, 95, 28 * 28 * 300}};
  exec_context& ctx = gpu();
  uint64_t seed = 70;
  for (const image_case& c : cases)
    for (hf_image_backend b : {hf_image_backend::torchvision, hf_image_backend::pil}) {
      glm4v_preprocess_config cfg;
      cfg.max_pixels = c.max_pixels;
      cfg.backend = b;
      image_rgb8 img;
      img.width = c.w, img.height = c.h;
      img.rgb.resize(size_t(c.w) * c.h * 3);
      std::mt19937_64 rng(seed++);
      for (uint8_t& v : img.rgb) v = uint8_t(rng() >> 56);
      const glm4v_pixels want = glm4v_preprocess(img, cfg);
      const raw_image raw = glm4v_raw_image(img, cfg);
      const int64_t n = want.n_patches(), pd = int64_t(want.values.size()) / n;
      const std::string what = std::to_string(c.w) + "x" + std::to_string(c.h) +
                               (b == hf_image_backend::pil ? " pil" : " torchvision");
      for (dtype t : {dtype::F32, dtype::BF16}) {
        ctx.arena().reset();
        tensor out = ops::scratch(ctx, t, {n, pd});
        ops::image_patches(ctx, raw, cfg.patch_size, cfg.temporal_patch_size, cfg.merge_size, out);
        const std::vector<float> got = values(ctx, out);
        ASSERT_EQ(got.size(), want.values.size()) << what;
        size_t differ = 0;
        for (size_t i = 0; i < got.size(); ++i)
          differ += got[i] != (t == dtype::F32 ? want.values[i] : bf16_to_f32(f32_to_bf16(want.values[i])));
        EXPECT_EQ(differ, 0u) << what << " " << dtype_name(t);
      }
    }
  ctx.arena().reset();
}

// The cache's bytes after kv_store of fused k|v rows (views with a row stride), padding slots included.
TEST_F(cuda_ops, kv_store_writes_the_cpus_bytes) {
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16}) {
    const int64_t n = 9, kvh = 2, hd = 40, blocks = 4, bs = 5;
    const std::vector<float> kv_rows = normal(size_t(n * 2 * kvh * hd), 31);
    const std::vector<int32_t> slots = {0, 7, -1, 19, 3, 4, 12, -1, 11};
    std::vector<uint8_t> got[2][2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      paged_kv_layer kv;
      const std::vector<float> zeros(size_t(blocks * bs * kvh * hd), 0.0f);
      kv.k = on(ctx, host_tensor(t, {blocks, bs, kvh, hd}, zeros));
      kv.v = on(ctx, host_tensor(t, {blocks, bs, kvh, hd}, zeros));
      const tensor fused = on(ctx, host_tensor(dtype::F32, {n, 2 * kvh * hd}, kv_rows));
      ops::kv_store(ctx, kv, fused.cols_view(0, kvh * hd), fused.cols_view(kvh * hd, kvh * hd),
                    on(ctx, host_i32({n}, slots)));
      got[i][0] = bytes_of(ctx, kv.k);
      got[i][1] = bytes_of(ctx, kv.v);
    }
    EXPECT_EQ(got[1][0], got[0][0]) << "k cache " << dtype_name(t);
    EXPECT_EQ(got[1][1], got[0][1]) << "v cache " << dtype_name(t);
  }
}

// LINEAR_ROPE_KV_STORE on the GPU gives the bytes of LINEAR then ROPE_KV_STORE there (the decode GEMV's epilogue
// rotates and stores what the GEMV would have written): y and both caches, for decode rows 1, 3 and 8 (a padding slot
// at row 4), 9 rows (the GEMM, then ROPE_KV_STORE), every cache type, F32 and BF16 weights with a bias; and the same
// values as the CPU backend within the GEMV's F32 tolerance.
TEST_F(cuda_ops, linear_rope_kv_store_gives_the_bytes_of_linear_then_rope_kv_store) {
  const int64_t q_heads = 8, kvh = 2, hd = 128, rot = 64, k = 256, blocks = 6, bs = 16;
  const int64_t kvd = kvh * hd, n = q_heads * hd + 2 * kvd;
  const std::array<int32_t, 3> sections = {8, 12, 12};
  for (dtype wt : {dtype::F32, dtype::BF16})
    for (dtype ct : {dtype::F32, dtype::F16, dtype::BF16})
      for (int64_t m : {1, 3, 8, 9}) {
        const uint64_t seed = uint64_t(m * 7 + int64_t(wt) * 3 + int64_t(ct));
        const std::vector<float> x = normal(size_t(m * k), seed), w = normal(size_t(n * k), seed + 1, 0.1f),
                                 b = normal(size_t(n), seed + 2), fill = normal(size_t(blocks * bs * kvd), seed + 3);
        std::vector<int32_t> slots, pos;
        for (int64_t i = 0; i < m; ++i) slots.push_back(i == 4 ? -1 : int32_t((i * 37 + 5) % (blocks * bs)));
        for (int64_t i = 0; i < 3 * m; ++i) pos.push_back(int32_t(1000 + i * 91));
        std::vector<uint8_t> got[3][3];  // (GPU fused, GPU unfused, CPU) x (y, k cache, v cache)
        std::vector<float> y_values[3];
        for (int run = 0; run < 3; ++run) {
          exec_context& ctx = run < 2 ? gpu() : cpu();
          linear_weight lw;
          lw.weight = ops::prepare_weight(ctx, host_tensor(wt, {n, k}, w));
          lw.bias = ops::prepare_param_f32(ctx, host_tensor(dtype::F32, {n}, b));
          lw.name = "test.qkv";
          paged_kv_layer kv;
          kv.k = on(ctx, host_tensor(ct, {blocks, bs, kvh, hd}, fill));
          kv.v = on(ctx, host_tensor(ct, {blocks, bs, kvh, hd}, fill));
          const tensor xt = on(ctx, host_tensor(dtype::F32, {m, k}, x));
          const tensor pt = on(ctx, host_i32({3, m}, pos)), st = on(ctx, host_i32({m}, slots));
          tensor y = ops::scratch(ctx, dtype::F32, {m, n});
          if (run == 1) {
            ops::linear(ctx, xt, lw, y);
            tensor qk = y.cols_view(0, n - kvd);
            ops::rope_kv_store(ctx, qk, int32_t(q_heads), int32_t(rot), pt, sections, 10000.0f, kv,
                               y.cols_view(n - kvd, kvd), st);
          } else {
            ops::linear_rope_kv_store(ctx, xt, lw, y, int32_t(q_heads), int32_t(rot), pt, sections, 10000.0f, kv, st);
          }
          got[run][0] = bytes_of(ctx, y);
          got[run][1] = bytes_of(ctx, kv.k);
          got[run][2] = bytes_of(ctx, kv.v);
          y_values[run] = values(ctx, y);
        }
        const std::string what = std::string(dtype_name(wt)) + " weights, " + dtype_name(ct) + " cache, m=" +
                                 std::to_string(m);
        EXPECT_EQ(got[0][0], got[1][0]) << "y, " << what;
        EXPECT_EQ(got[0][1], got[1][1]) << "k cache, " << what;
        EXPECT_EQ(got[0][2], got[1][2]) << "v cache, " << what;
        const double tol = m > 8 && wt != dtype::F32 ? k_bf16_gemm_tol : k_f32_tol;
        EXPECT_LE(norm_error(y_values[0], y_values[2]), tol) << "y against the CPU, " << what;
      }
}

struct paged_case {
  int32_t heads, kv_heads, hd, block;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (n_past, n_new)
};

// Fills caches of `t` through kv_store on both backends (same bytes, checked above), then attends.
void check_paged(exec_context& cpu_ctx, exec_context& gpu_ctx, dtype t, const paged_case& c, double tol = k_f32_tol) {
  int32_t n_rows = 0, n_blocks = 0, max_ctx = 0, width = 0;
  for (const auto& [past, fresh] : c.seqs) {
    n_rows += fresh;
    const int32_t nb = (past + fresh + c.block - 1) / c.block;
    n_blocks += nb;
    width = std::max(width, nb + 1);
    max_ctx = std::max(max_ctx, past + fresh);
  }
  const int32_t kw = c.kv_heads * c.hd, qw = c.heads * c.hd;
  // Block ids handed out back to front; every sequence's whole context written through its slots.
  std::vector<int32_t> tables(size_t(c.seqs.size() * width), -1), info, slots;
  int32_t next = n_blocks - 1, row = 0, total_ctx = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const auto [past, fresh] = c.seqs[s];
    for (int32_t b = 0; b < (past + fresh + c.block - 1) / c.block; ++b) tables[s * width + size_t(b)] = next--;
    for (int32_t p = 0; p < past + fresh; ++p) slots.push_back(tables[s * width + size_t(p / c.block)] * c.block + p % c.block);
    info.insert(info.end(), {row, fresh, past});
    row += fresh;
    total_ctx += past + fresh;
  }
  const std::vector<float> kv_rows = normal(size_t(total_ctx * 2 * kw), uint64_t(total_ctx + c.hd));
  const std::vector<float> q = normal(size_t(n_rows * qw), uint64_t(n_rows + c.heads));
  std::vector<float> out[2];
  exec_context* ctxs[2] = {&cpu_ctx, &gpu_ctx};
  for (int i = 0; i < 2; ++i) {
    exec_context& ctx = *ctxs[i];
    paged_kv_layer kv;
    kv.k = ops::alloc_persistent(ctx, t, {n_blocks, c.block, c.kv_heads, c.hd});
    kv.v = ops::alloc_persistent(ctx, t, {n_blocks, c.block, c.kv_heads, c.hd});
    const tensor fused = on(ctx, host_tensor(dtype::F32, {total_ctx, 2 * kw}, kv_rows));
    ops::kv_store(ctx, kv, fused.cols_view(0, kw), fused.cols_view(kw, kw), on(ctx, host_i32({total_ctx}, slots)));
    paged_batch batch;
    batch.n_seqs = int32_t(c.seqs.size());
    batch.max_context = max_ctx;
    batch.seq_info = on(ctx, host_i32({batch.n_seqs, 3}, info));
    batch.block_tables = on(ctx, host_i32({batch.n_seqs, width}, tables));
    tensor o = strided_f32(ctx, std::vector<float>(size_t(n_rows * qw), 0.0f), n_rows, qw, 4, 3);
    ops::attention_paged(ctx, strided_f32(ctx, q, n_rows, qw, 7, 0), kv, batch, c.heads, c.kv_heads, c.hd,
                         1.0f / std::sqrt(float(c.hd)), o);
    out[i] = values(ctx, o);
  }
  std::string name = std::string(dtype_name(t)) + " heads " + std::to_string(c.heads) + "/" +
                     std::to_string(c.kv_heads) + " hd " + std::to_string(c.hd) + " block " + std::to_string(c.block);
  for (const auto& [past, fresh] : c.seqs) name += " " + std::to_string(past) + "+" + std::to_string(fresh);
  EXPECT_LE(norm_error(out[1], out[0]), tol) << name;
}

TEST_F(cuda_ops, paged_attention_matches_the_cpu_on_one_split_and_on_several) {
  const std::vector<paged_case> cases = {
      {4, 2, 8, 16, {{0, 1}}},
      {6, 2, 64, 16, {{37, 1}, {0, 7}, {15, 20}}},            // prefill rows of several sequences, one split
      {3, 1, 80, 5, {{4, 3}, {11, 1}}},                       // head_dim past 64, odd block size
      {2, 2, 16, 7, {{0, 40}}},                               // MHA: 16 rows per block, a partial tile
      {32, 2, 128, 16, {{3000, 1}}},                          // GLM decode: 16 heads per KV head, many splits
      {32, 2, 128, 16, {{511, 1}}},                           // 8 splits: merged in a cluster on sm_90
      {32, 2, 128, 16, {{1000, 1}}},                          // 16 splits: the largest cluster
      {32, 2, 128, 16, {{100, 1}, {600, 1}, {5, 1}}},         // a cluster's splits past a short context: empty
      {8, 2, 64, 16, {{300, 1}}},                             // head_dim 64, group 4, in a cluster
      {32, 2, 128, 16, {{1000, 1}, {2500, 1}, {10, 1}}},      // decodes of different lengths, split
      {8, 2, 128, 16, {{2000, 3}, {700, 2}}},                 // a few new rows over long contexts, split
      {6, 2, 200, 16, {{300, 2}}},                            // head_dim 200 (8 chunks, opt-in shared memory)
      {12, 4, 96, 16, {{0, 33}, {400, 17}}},                  // group 3 (not a power of two)
  };
  // Split GEMM precision: decode batches over BF16 caches take the F32 split kernel too (the tensor-core decode
  // kernel has its own test below).
  const gemm_precision_scope split(true);
  for (dtype t : {dtype::BF16, dtype::F16, dtype::F32})
    for (const paged_case& c : cases) check_paged(cpu(), gpu(), t, c);
}

// Batches of decodes over a BF16 cache at bf16 GEMM precision (the default) run on tensor cores
// (attention_decode_mma.cu: bf16 Q and P; by default from 2,048 positions, here at every length): a bf16 bound
// against the CPU. Contexts cut the 64-key tiles anywhere,
// one to several passes per warp, a cluster's blocks past a short context (empty), 70 sequences (one block each, no
// cluster), group 3 and 4, head_dim 64, an odd block size; 30,000 positions is past the kernel's passes and takes the
// F32 kernel. F16 / F32 caches and AUTOGLM_CUDA_DECODE_ATTENTION=split keep the F32 kernel and the F32 bound.
TEST_F(cuda_ops, paged_decode_on_tensor_cores_matches_the_cpu) {
  std::vector<std::pair<int32_t, int32_t>> many;
  for (int32_t i = 0; i < 70; ++i) many.push_back({(i * 37) % 300, 1});
  const std::vector<paged_case> cases = {
      {32, 2, 128, 16, {{0, 1}}},                         // one position
      {32, 2, 128, 16, {{63, 1}}},                        // one whole tile
      {32, 2, 128, 16, {{64, 1}}},                        // a tile and one row
      {32, 2, 128, 16, {{511, 1}}},
      {32, 2, 128, 16, {{4899, 1}}},                      // the agent step's context: 16 blocks of 5 warps
      {32, 2, 128, 16, {{9000, 1}}},                      // two passes per warp
      {32, 2, 128, 16, {{20000, 1}}},                     // four passes
      {32, 2, 128, 16, {{29999, 1}}},                     // more: the F32 kernel
      {32, 2, 128, 16, {{100, 1}, {600, 1}, {5, 1}}},     // blocks past the short contexts: empty
      {32, 2, 128, 16, {{2047, 1}, {1000, 1}, {1, 1}, {2047, 1}, {70, 1}, {1500, 1}, {300, 1}, {2047, 1}}},
      {8, 2, 64, 16, {{300, 1}}},                         // head_dim 64, group 4
      {12, 4, 128, 7, {{700, 1}, {33, 1}}},               // group 3, odd block size
      {8, 8, 64, 16, many},                               // 70 sequences x 8 KV heads: a block each
  };
  // Every context on tensor cores (by default only batches reaching 2,048 positions take them).
  setenv("AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT", "0", 1);
  for (const paged_case& c : cases) {
    check_paged(cpu(), gpu(), dtype::BF16, c, k_bf16_attention_tol);
    setenv("AUTOGLM_CUDA_DECODE_ATTENTION", "split", 1);
    check_paged(cpu(), gpu(), dtype::BF16, c);
    unsetenv("AUTOGLM_CUDA_DECODE_ATTENTION");
    for (dtype t : {dtype::F16, dtype::F32}) check_paged(cpu(), gpu(), t, c);
  }
  unsetenv("AUTOGLM_CUDA_DECODE_MMA_MIN_CONTEXT");
  // The default threshold: 4,900 positions on tensor cores, 600 on the F32 kernel, in one batch and alone.
  for (const paged_case& c : std::vector<paged_case>{{32, 2, 128, 16, {{4899, 1}, {599, 1}}}, {32, 2, 128, 16, {{599, 1}}}})
    check_paged(cpu(), gpu(), dtype::BF16, c, k_bf16_attention_tol);
}

// Sequences with 128 new rows or more (prefill chunks) run on tensor cores at bf16 GEMM precision (bf16 Q, K, V
// and softmax weights): by default the causal wgmma kernel on a compute capability 9.0 device (head dim 128) and the
// causal mma kernel elsewhere (=mma64: 64-row blocks, =mma: 128; head dims 64 and 128), cuBLAS for other head dims
// or with AUTOGLM_CUDA_PREFILL_ATTENTION=gemm; a bf16 bound against the CPU, with decode rows
// and short chunks beside them on the flash kernel in the same batch. Under SPLIT precision, or with =flash, the
// F32 bound.
TEST_F(cuda_ops, paged_attention_of_prefill_chunks_on_tensor_cores) {
  const std::vector<paged_case> cases = {
      {32, 2, 128, 16, {{0, 300}}},                             // a first chunk
      {32, 2, 128, 16, {{1500, 512}, {40, 1}, {700, 20}}},       // a chunk after a cached prompt, decode, short
      {8, 2, 64, 7, {{33, 129}, {0, 200}, {2000, 1}}},           // odd block size, a split decode row
      {12, 4, 96, 16, {{100, 130}}},                            // group 3, a head dim only cuBLAS takes
      {16, 16, 128, 16, {{5, 129}, {0, 1000}}},                 // MHA; a row block of one row; 1000 rows
      {32, 2, 128, 16, {{61, 700}, {1, 200}}},                  // the diagonal off the 64-key tiles
  };
  for (dtype t : {dtype::BF16, dtype::F16, dtype::F32})
    for (const paged_case& c : cases) {
      check_paged(cpu(), gpu(), t, c, k_bf16_attention_tol);
      for (const char* path : {"wgmma_ws", "wgmma", "mma64", "mma", "gemm"}) {
        setenv("AUTOGLM_CUDA_PREFILL_ATTENTION", path, 1);
        check_paged(cpu(), gpu(), t, c, k_bf16_attention_tol);
      }
      {
        const gemm_precision_scope split(true);
        check_paged(cpu(), gpu(), t, c);
      }
      setenv("AUTOGLM_CUDA_PREFILL_ATTENTION", "flash", 1);
      check_paged(cpu(), gpu(), t, c);
      unsetenv("AUTOGLM_CUDA_PREFILL_ATTENTION");
    }
}

TEST_F(cuda_ops, dense_attention_matches_the_cpu_within_segments) {
  struct dense_case {
    int64_t n, heads, hd;
    std::vector<int32_t> seg;
  };
  for (const dense_case& c : std::vector<dense_case>{{1, 1, 16, {0, 1}},
                                                     {130, 3, 32, {0, 5, 53, 54, 130}},
                                                     {600, 2, 80, {0, 600}},
                                                     {45, 2, 16, {3, 40}},
                                                     {300, 2, 128, {0, 150, 300}}}) {
    const int64_t w = c.heads * c.hd;
    const std::vector<float> qkv = normal(size_t(c.n * 3 * w), uint64_t(c.n + w));
    std::vector<float> out[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      const tensor f = on(ctx, host_tensor(dtype::F32, {c.n, 3 * w}, qkv));
      // Rows outside every segment keep the sentinel -7 of strided_f32.
      tensor o = strided_f32(ctx, std::vector<float>(size_t(c.n * w), -7.0f), c.n, w, 2, 1);
      ops::attention_dense(ctx, f.cols_view(0, w), f.cols_view(w, w), f.cols_view(2 * w, w), int32_t(c.heads),
                           int32_t(c.hd), on(ctx, host_i32({int64_t(c.seg.size())}, c.seg)),
                           1.0f / std::sqrt(float(c.hd)), o);
      out[i] = values(ctx, o);
    }
    EXPECT_LE(norm_error(out[1], out[0]), k_f32_tol) << "n=" << c.n << " heads=" << c.heads << " hd=" << c.hd;
  }
}

// From 1024 rows the dense kernel runs on tensor cores (bf16 products, F32 accumulation): the wgmma flash kernel on a
// compute capability 9.0 device (AUTOGLM_CUDA_DENSE_ATTENTION=wgmma, the default, and wgmma64: head_dim 128; other
// devices and head dims take mma64), the mma.sync flash kernel (mma64 with 64-row blocks, mma with 128-row blocks;
// head_dim 64 and 128, other head dims fall back to cuBLAS), cuBLAS (gemm) or the fused WMMA kernel (fused): each
// held to a bf16 bound against the CPU; with SPLIT precision the same inputs take the F32 kernel and the F32 bound. Segment lengths are
// not multiples of the 64-key tile or the 64/128-row blocks; rows outside every segment keep their sentinel.
TEST_F(cuda_ops, dense_attention_of_large_images_on_tensor_cores) {
  struct big_case {
    int64_t n, heads, hd;
    std::vector<int32_t> seg;
  };
  struct variant {
    const char* name;
    const char* path;  // AUTOGLM_CUDA_DENSE_ATTENTION, or null for the CPU
    bool split;
  };
  const variant variants[] = {{"cpu", nullptr, false},
                              {"wgmma flash kernel, 128-key tiles", "wgmma", false},
                              {"wgmma flash kernel, 64-key tiles", "wgmma64", false},
                              {"wgmma flash kernel, warp-specialized", "wgmma_ws", false},
                              {"wgmma flash kernel, warp-specialized, TMA loads", "wgmma_tma", false},
                              {"mma.sync flash kernel, 128-row blocks", "mma", false},
                              {"mma.sync flash kernel, 64-row blocks", "mma64", false},
                              {"tensor cores via cuBLAS", "gemm", false},
                              {"fused tensor-core kernel", "fused", false},
                              {"split precision: F32 kernel", "gemm", true}};
  constexpr int n_variants = int(std::size(variants));
  for (const big_case& c : std::vector<big_case>{{1100, 2, 128, {0, 1100}}, {2100, 1, 64, {0, 1000, 2100}},
                                                 {1030, 3, 96, {0, 1, 1030}}, {1024, 2, 32, {7, 1024}},
                                                 {1500, 2, 128, {0, 700, 700, 1500}},
                                                 {4000, 2, 128, {0, 1333, 2701, 4000}},
                                                 {3001, 3, 64, {5, 1029, 1030, 2999}},
                                                 {1024, 1, 128, {0, 1, 64, 65, 1024}}}) {
    const int64_t w = c.heads * c.hd;
    const std::vector<float> qkv = normal(size_t(c.n * 3 * w), uint64_t(c.n * 7 + w));
    std::vector<float> out[n_variants];
    for (int i = 0; i < n_variants; ++i) {
      const variant& vr = variants[i];
      exec_context& ctx = vr.path ? gpu() : cpu();
      if (vr.path) setenv("AUTOGLM_CUDA_DENSE_ATTENTION", vr.path, 1);
      const gemm_precision_scope precision(vr.split);
      const tensor f = on(ctx, host_tensor(dtype::F32, {c.n, 3 * w}, qkv));
      tensor o = strided_f32(ctx, std::vector<float>(size_t(c.n * w), -7.0f), c.n, w, 2, 1);
      ops::attention_dense(ctx, f.cols_view(0, w), f.cols_view(w, w), f.cols_view(2 * w, w), int32_t(c.heads),
                           int32_t(c.hd), on(ctx, host_i32({int64_t(c.seg.size())}, c.seg)),
                           1.0f / std::sqrt(float(c.hd)), o);
      out[i] = values(ctx, o);
      unsetenv("AUTOGLM_CUDA_DENSE_ATTENTION");
    }
    const std::string name = "n=" + std::to_string(c.n) + " heads=" + std::to_string(c.heads) + " hd=" + std::to_string(c.hd);
    for (int i = 1; i < n_variants; ++i)
      EXPECT_LE(norm_error(out[i], out[0]), variants[i].split ? k_f32_tol : k_bf16_attention_tol)
          << name << " (" << variants[i].name << ")";
  }
}

TEST_F(cuda_ops, bicubic_position_embedding_matches_the_cpu) {
  for (const auto& [g, d, gh, gw] : std::vector<std::array<int32_t, 4>>{{6, 13, 4, 6}, {16, 32, 8, 24}, {3, 8, 1, 1},
                                                                        {24, 64, 46, 84}}) {
    const std::vector<float> table = normal(size_t(g * g * d), uint64_t(g + d));
    std::vector<int32_t> pos;
    for (int32_t h = 0; h < gh; ++h)
      for (int32_t w = 0; w < gw; ++w) pos.push_back(h);
    for (int32_t h = 0; h < gh; ++h)
      for (int32_t w = 0; w < gw; ++w) pos.push_back(w);
    const int64_t n = int64_t(gh) * gw;
    std::vector<float> out[2];
    exec_context* ctxs[2] = {&cpu(), &gpu()};
    for (int i = 0; i < 2; ++i) {
      exec_context& ctx = *ctxs[i];
      tensor o = ops::scratch(ctx, dtype::F32, {n, d});
      ops::pos_embed_bicubic(ctx, on(ctx, host_tensor(dtype::F32, {int64_t(g) * g, d}, table)), g, gh, gw,
                             on(ctx, host_i32({2, n}, pos)), o);
      out[i] = values(ctx, o);
    }
    EXPECT_LE(norm_error(out[1], out[0]), k_f32_tol) << "table " << g << " grid " << gh << "x" << gw;
  }
}

}  // namespace
