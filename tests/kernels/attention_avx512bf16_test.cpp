// tests/kernels/attention_avx512bf16_test.cpp: ATTENTION_DENSE's AVX-512 BF16 path (kernels/cpu/attention_avx512bf16.h)
// and the pieces it adds.
//  - The segment against the double-precision value of its contract (Q, K, V rounded to bf16; f32 softmax weights
//    rounded to bf16 and divided by their sum) within 1e-3, and against exact attention within the bf16 bound of the
//    AMX path and the CUDA tensor-core attention (2e-2); on segments that cut the 48-row query blocks, the 64-key
//    panels and the 128-pair P.V chunks, head_dim 32 / 64 / 96 / 128, several heads, strided q/k/v views of one
//    fused buffer, rows outside the segment untouched, 1 and 3 threads. Skipped where the CPU lacks AVX-512 BF16.
//  - An output row does not depend on where the segment's query blocks fall (the same row computed with r0 shifted).
//  - softmax_row_bf16 (AVX-512 where present) gives the bytes and sum of the 8-lane model it replaced, and
//    softmax_scaled_row_bf16 on pre-scaled scores gives softmax_row_bf16's.
//  - The P.V tile that reads x from row pointers gives the interleaved tile's bits.
//  - The path is chosen only from 1024 rows, for head_dim % 32 == 0, with the ROUNDED precision, without AMX.
//  - The causal prefill over a paged cache (F32, F16, BF16, Q8_0; shuffled block tables, history before the new
//    rows, grouped query heads, strided q and out) against the same contract per row over its own positions, rows
//    and columns outside the sequence untouched; chosen from 64 new rows under ROUNDED.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/attention_avx512bf16.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/quant_kv.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_kernels.h"
#include "kernels/cpu/vec_exp.h"
#include "dense_attention_problem.h"

namespace autoglm::cpu {
namespace {

using namespace dense_test;

void run(problem& p, int64_t r0, int64_t n, float scale, int threads) {
  thread_pool pool(threads);
  attention_dense_segment_avx512bf16(&pool, p.part(0), p.part(1), p.part(2), r0, n, p.heads, p.hd, scale,
                                     p.out_rows());
}

TEST(attention_avx512bf16, meets_the_contract_and_the_bf16_bound) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  struct shape {
    int64_t rows, heads, hd, r0, n;
  };
  // n: one row; under one micro-panel; a 48-row block and a 64-key panel cut; 300 keys = 150 pairs (a 128-pair
  // chunk and a short one); hd 96: a partial 64-dim panel of V.
  const shape shapes[] = {{1, 1, 32, 0, 1},    {9, 2, 64, 2, 5},     {60, 1, 32, 3, 49},  {70, 2, 128, 1, 65},
                          {130, 3, 96, 10, 100}, {300, 1, 128, 0, 300}, {305, 2, 64, 4, 257}};
  for (const shape& sh : shapes)
    for (int threads : {1, 3}) {
      problem p = make(sh.rows, sh.heads, sh.hd, uint64_t(sh.n * 131 + sh.hd + threads));
      const float scale = 1.0f / std::sqrt(float(sh.hd));
      run(p, sh.r0, sh.n, scale, threads);
      const std::string what = "n=" + std::to_string(sh.n) + " hd=" + std::to_string(sh.hd) +
                               " heads=" + std::to_string(sh.heads) + " threads=" + std::to_string(threads);
      EXPECT_LE(max_error(p, sh.r0, sh.n, reference(p, sh.r0, sh.n, scale, true)), 1e-3) << what << ": contract";
      EXPECT_LE(max_error(p, sh.r0, sh.n, reference(p, sh.r0, sh.n, scale, false)), 2e-2) << what << ": exact";
    }
}

TEST(attention_avx512bf16, a_row_does_not_depend_on_the_blocking) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  // The same 1,100 keys and queries at row offsets 0 and 7 of two buffers: every query row falls at another place
  // of its 48-row block (and, over 3 threads, in another task), yet its bytes must be the same.
  const int64_t n = 1100, hd = 128, heads = 2;
  problem a = make(n + 7, heads, hd, 5), b = a;
  const int64_t w = a.w();
  // b's rows 7.. hold a's rows 0.. (q, k, v alike).
  for (int64_t r = n - 1; r >= 0; --r)
    std::copy_n(a.qkv.begin() + r * 3 * w, 3 * w, b.qkv.begin() + (r + 7) * 3 * w);
  const float scale = 0.088f;
  run(a, 0, n, scale, 1);
  run(b, 7, n, scale, 3);
  for (int64_t r = 0; r < n; ++r)
    ASSERT_EQ(0, std::memcmp(&a.out[size_t(r * a.ld_out())], &b.out[size_t((r + 7) * b.ld_out())], size_t(w) * 4))
        << "row " << r;
}

#if defined(__x86_64__)
// The 8-lane model of softmax_row_bf16 (its AVX2 code before the AVX-512 one): scaled scores, the maximum, weights
// bf16(exp_avx2(s - max)) 8 at a time (the tail padded with -inf), their sum in two 4-lane double accumulators.
__attribute__((target("avx2,fma"))) void exp8(const float* in, float* out) {
  _mm256_storeu_ps(out, exp_avx2(_mm256_loadu_ps(in)));
}

float softmax_model(std::vector<float> s, float scale, std::vector<uint16_t>& p) {
  const int64_t n = int64_t(s.size());
  float mx = -INFINITY;
  for (float& x : s) mx = std::max(mx, x *= scale);
  double lo[4] = {}, hi[4] = {};
  for (int64_t j = 0; j < n; j += 8) {
    alignas(32) float in[8], e[8];
    for (int t = 0; t < 8; ++t) in[t] = j + t < n ? s[size_t(j + t)] - mx : -INFINITY;
    exp8(in, e);
    for (int t = 0; t < 8; ++t) {
      const uint16_t b = f32_to_bf16(e[t]);
      if (j + t < n) p[size_t(j + t)] = b;
      (t < 4 ? lo[t] : hi[t - 4]) += double(bf16_to_f32(b));
    }
  }
  const double l[4] = {lo[0] + hi[0], lo[1] + hi[1], lo[2] + hi[2], lo[3] + hi[3]};
  return float((l[0] + l[1]) + (l[2] + l[3]));
}

TEST(attention_avx512bf16, softmax_rows_give_the_8_lane_models_bytes) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "the model runs exp_avx2";
  std::mt19937_64 gen(3);
  std::normal_distribution<float> nd(0.0f, 6.0f);
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 48, 100, 1000, 13416}) {
    std::vector<float> s(static_cast<size_t>(n));
    for (float& x : s) x = nd(gen);
    if (n > 20) s[5] = -1e30f, s[11] = 0.0f, s[12] = -0.0f;
    const float scale = 0.0883883f;
    std::vector<uint16_t> want(static_cast<size_t>(n)), got = want, got_scaled = want;
    const float want_sum = softmax_model(s, scale, want);
    std::vector<float> row = s;
    const float sum = softmax_row_bf16(row.data(), n, scale, got.data());
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), size_t(n) * 2)) << "n=" << n;
    EXPECT_EQ(std::bit_cast<uint32_t>(want_sum), std::bit_cast<uint32_t>(sum)) << "n=" << n;
    // Pre-scaled scores and their maximum give the same weights and sum.
    std::vector<float> scaled = s;
    float mx = -INFINITY;
    for (float& x : scaled) mx = std::max(mx, x *= scale);
    const float sum_scaled = softmax_scaled_row_bf16(scaled.data(), n, mx, got_scaled.data());
    EXPECT_EQ(0, std::memcmp(want.data(), got_scaled.data(), size_t(n) * 2)) << "n=" << n;
    EXPECT_EQ(std::bit_cast<uint32_t>(want_sum), std::bit_cast<uint32_t>(sum_scaled)) << "n=" << n;
  }
}

TEST(attention_avx512bf16, the_row_pointer_tile_gives_the_interleaved_tiles_bits) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  using namespace bf16_detail;
  const int64_t steps = 37;
  std::mt19937_64 gen(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto pair = [&] { return uint32_t(f32_to_bf16(nd(gen))) | uint32_t(f32_to_bf16(nd(gen))) << 16; };
  aligned_buffer wp(size_t(steps * k_bf16_nr) * 4), xp(size_t(steps * k_bf16_mr) * 4);
  aligned_buffer t1(size_t(k_bf16_mr * k_bf16_nr) * 4), t2(size_t(k_bf16_mr * k_bf16_nr) * 4);
  uint32_t* w = static_cast<uint32_t*>(wp.data());
  uint32_t* x = static_cast<uint32_t*>(xp.data());
  for (int64_t i = 0; i < steps * k_bf16_nr; ++i) w[i] = pair();
  std::vector<std::vector<uint32_t>> rows(k_bf16_mr, std::vector<uint32_t>(size_t(steps)));
  for (int64_t s = 0; s < steps; ++s)
    for (int a = 0; a < k_bf16_mr; ++a) rows[size_t(a)][size_t(s)] = x[s * k_bf16_mr + a] = pair();
  const uint32_t* ptrs[k_bf16_mr];
  for (int a = 0; a < k_bf16_mr; ++a) ptrs[a] = rows[size_t(a)].data();
  for (bool load : {false, true}) {
    for (int64_t i = 0; i < k_bf16_mr * k_bf16_nr; ++i) t1.f32()[i] = t2.f32()[i] = nd(gen);
    tile_avx512bf16(x, w, steps, t1.f32(), load);
    tile_rows_avx512bf16(ptrs, w, steps, t2.f32(), load);
    EXPECT_EQ(0, std::memcmp(t1.data(), t2.data(), size_t(k_bf16_mr * k_bf16_nr) * 4)) << "load=" << load;
  }
}

#endif

TEST(attention_avx512bf16, taken_only_for_long_segments_of_whole_32_dim_chunks_without_amx) {
  EXPECT_FALSE(attention_dense_uses_avx512bf16(1023, 128));
  EXPECT_FALSE(attention_dense_uses_avx512bf16(4096, 80));
  const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
  EXPECT_EQ(attention_dense_uses_avx512bf16(1024, 128),
            bf16_gemm_available() && bf16_dots_outrun_fma() && !amx_bf16_usable());
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);  // F32 attention whatever the CPU
  EXPECT_FALSE(attention_dense_uses_avx512bf16(4096, 128));
}

TEST(attention_avx512bf16, causal_prefill_over_a_paged_cache_meets_the_contract) {
  if (!bf16_gemm_available()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  check_causal_prefill(attention_prefill_avx512bf16, 3);
}

TEST(attention_avx512bf16, whether_the_dots_outrun_the_fmas_is_the_cpus_answer) {
  // The answer is the CPU's; it must be the same each time it is asked, and false without AVX-512 BF16.
  const bool first = bf16_dots_outrun_fma();
  EXPECT_EQ(first, bf16_dots_outrun_fma());
  if (!bf16_gemm_available()) {
    EXPECT_FALSE(first);
  }
}

TEST(attention_avx512bf16, the_prefill_path_is_taken_from_64_new_rows_under_rounded) {
  EXPECT_FALSE(attention_prefill_uses_avx512bf16(64, 80));
  const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
  EXPECT_FALSE(attention_prefill_uses_avx512bf16(63, 128));
  EXPECT_EQ(attention_prefill_uses_avx512bf16(64, 128),
            bf16_gemm_available() && bf16_dots_outrun_fma() && !amx_bf16_usable());
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);  // F32 attention, bit-identical to decode rows
  EXPECT_FALSE(attention_prefill_uses_avx512bf16(4096, 128));
}

}  // namespace
}  // namespace autoglm::cpu
