// tests/kernels/attention_amx_test.cpp: ATTENTION_DENSE's AMX path (kernels/cpu/attention_amx.h).
//  - The kernel over amx_emulated (the tile instructions in plain C++) on every machine: against the double-precision
//    value of its contract (Q, K, V rounded to bf16; f32 softmax weights rounded to bf16 and divided by their sum)
//    within 1e-3, and against exact attention within the bf16 bound of the CUDA tensor-core attention (2e-2); on
//    segments that cut the 32-row blocks, the 16-key panels and the 32-key chunks, head_dim 32 / 64 / 128, several
//    heads, strided q/k/v views of one fused buffer, rows outside the segment untouched, 1 and 3 threads.
//  - Where the tiles are usable (an AMX Xeon unless AUTOGLM_CPU_AMX=0; skipped elsewhere): the real instructions give
//    the emulation's values.
//  - The path is chosen only from 1024 rows, for head_dim % 32 == 0 and with the ROUNDED precision.
//  - The causal prefill over a paged cache (dense_attention_problem.h's check_causal_prefill: F32, F16, BF16, Q8_0
//    caches, shuffled block tables, history, grouped heads, strided q and out, 32-row blocks cut) against the same
//    contract per row over its own positions, on emulated tiles (1 and 3 threads) and on the real ones where usable;
//    chosen from 64 new rows under ROUNDED.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/gemm_bf16.h"
#include "dense_attention_problem.h"

namespace autoglm::cpu {
namespace {

using namespace dense_test;

struct shape {
  int64_t rows, heads, hd, r0, n;
};

TEST(attention_amx, emulated_tiles_meet_the_contract_and_the_bf16_bound) {
  const shape shapes[] = {{1, 1, 32, 0, 1},      {9, 2, 64, 2, 5},     {40, 1, 32, 3, 31},  {32, 2, 128, 0, 32},
                          {50, 3, 64, 7, 33},    {130, 2, 96, 10, 100}, {300, 1, 128, 0, 300}};
  for (const shape& sh : shapes)
    for (int threads : {1, 3}) {
      problem p = make(sh.rows, sh.heads, sh.hd, uint64_t(sh.n * 131 + sh.hd + threads));
      thread_pool pool(threads);
      const float scale = 1.0f / std::sqrt(float(sh.hd));
      attention_dense_segment_amx_emulated(&pool, p.part(0), p.part(1), p.part(2), sh.r0, sh.n, sh.heads, sh.hd,
                                           scale, p.out_rows());
      const std::string what = "n=" + std::to_string(sh.n) + " hd=" + std::to_string(sh.hd) +
                               " heads=" + std::to_string(sh.heads) + " threads=" + std::to_string(threads);
      EXPECT_LE(max_error(p, sh.r0, sh.n, reference(p, sh.r0, sh.n, scale, true)), 1e-3)
          << what << ": against the contract";
      EXPECT_LE(max_error(p, sh.r0, sh.n, reference(p, sh.r0, sh.n, scale, false)), 2e-2)
          << what << ": against exact attention";
    }
}

TEST(attention_amx, a_long_segment_cuts_every_block) {
  // 1100 rows: 35 query blocks (the last of 12 rows), 69 key panels, 35 key chunks (the last of 12 keys).
  problem p = make(1103, 1, 64, 7);
  thread_pool pool(2);
  const float scale = 0.125f;
  attention_dense_segment_amx_emulated(&pool, p.part(0), p.part(1), p.part(2), 3, 1100, 1, 64, scale, p.out_rows());
  EXPECT_LE(max_error(p, 3, 1100, reference(p, 3, 1100, scale, true)), 1e-3);
}

TEST(attention_amx, taken_only_for_long_segments_of_whole_32_dim_chunks) {
  EXPECT_FALSE(attention_dense_uses_amx(1023, 128));
  EXPECT_FALSE(attention_dense_uses_amx(4096, 80));
  const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
  EXPECT_EQ(attention_dense_uses_amx(1024, 128), amx_bf16_usable());
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);  // F32 attention whatever the CPU
  EXPECT_FALSE(attention_dense_uses_amx(4096, 128));
}

TEST(attention_amx, the_tiles_give_the_emulations_values) {
  if (!amx_bf16_usable()) GTEST_SKIP() << "this CPU (or this process) has no AMX tiles";
  for (const shape& sh : {shape{1100, 2, 128, 0, 1100}, shape{300, 3, 64, 5, 290}}) {
    problem hw = make(sh.rows, sh.heads, sh.hd, 11), emu = hw;
    thread_pool pool(4);
    const float scale = 1.0f / std::sqrt(float(sh.hd));
    attention_dense_segment_amx(&pool, hw.part(0), hw.part(1), hw.part(2), sh.r0, sh.n, sh.heads, sh.hd, scale,
                                hw.out_rows());
    attention_dense_segment_amx_emulated(&pool, emu.part(0), emu.part(1), emu.part(2), sh.r0, sh.n, sh.heads, sh.hd,
                                         scale, emu.out_rows());
    double err = 0.0;
    for (size_t i = 0; i < hw.out.size(); ++i) err = std::max(err, double(std::fabs(hw.out[i] - emu.out[i])));
    // The hardware sums a tile's products in its own order (f32): a weight may round to the other bf16 neighbour.
    EXPECT_LE(err, 1e-3) << "n=" << sh.n;
    EXPECT_LE(max_error(hw, sh.r0, sh.n, reference(hw, sh.r0, sh.n, scale, false)), 2e-2);
  }
}

TEST(attention_amx, causal_prefill_on_emulated_tiles_meets_the_contract) {
  for (int threads : {1, 3}) check_causal_prefill(attention_prefill_amx_emulated, threads);
}

TEST(attention_amx, causal_prefill_on_the_tiles_meets_the_contract) {
  if (!amx_bf16_usable()) GTEST_SKIP() << "this CPU (or this process) has no AMX tiles";
  check_causal_prefill(attention_prefill_amx, 3);
}

TEST(attention_amx, the_prefill_path_is_taken_from_64_new_rows_under_rounded) {
  EXPECT_FALSE(attention_prefill_uses_amx(64, 80));
  const cpu_gemm_precision_scope rounded(cpu_gemm_precision::ROUNDED);
  EXPECT_FALSE(attention_prefill_uses_amx(63, 128));
  EXPECT_EQ(attention_prefill_uses_amx(64, 128), amx_bf16_usable());
  const cpu_gemm_precision_scope exact(cpu_gemm_precision::EXACT);  // F32 attention, bit-identical to decode rows
  EXPECT_FALSE(attention_prefill_uses_amx(4096, 128));
}

}  // namespace
}  // namespace autoglm::cpu
