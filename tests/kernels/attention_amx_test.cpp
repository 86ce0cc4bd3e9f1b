// tests/kernels/attention_amx_test.cpp: ATTENTION_DENSE's AMX path (kernels/cpu/attention_amx.h).
//  - The kernel over amx_emulated (the tile instructions in plain C++) on every machine: against the double-precision
//    value of its contract (Q, K, V rounded to bf16; f32 softmax weights rounded to bf16 and divided by their sum)
//    within 1e-3, and against exact attention within the bf16 bound of the CUDA tensor-core attention (2e-2); on
//    segments that cut the 32-row blocks, the 16-key panels and the 32-key chunks, head_dim 32 / 64 / 128, several
//    heads, strided q/k/v views of one fused buffer, rows outside the segment untouched, 1 and 3 threads.
//  - Where the tiles are usable (an AMX Xeon unless AUTOGLM_CPU_AMX=0; skipped elsewhere): the real instructions give
//    the emulation's values.
//  - The path is chosen only from 1024 rows, for head_dim % 32 == 0 and with the ROUNDED precision.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/gemm_bf16.h"

namespace autoglm::cpu {
namespace {

constexpr float k_sentinel = -777.0f;

struct problem {
  int64_t rows, heads, hd, r0, n;
  std::vector<float> qkv;  // [rows, 3 * heads * hd]
  std::vector<float> out;  // [rows, heads * hd + 5] (padding columns stay at the sentinel)
  int64_t w() const { return heads * hd; }
  int64_t ld_out() const { return w() + 5; }
  rows_of<const float> part(int i) const { return {qkv.data() + i * w(), 3 * w()}; }
  rows_of<float> out_rows() { return {out.data(), ld_out()}; }
};

problem make(int64_t rows, int64_t heads, int64_t hd, int64_t r0, int64_t n, uint64_t seed) {
  problem p{rows, heads, hd, r0, n, {}, {}};
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  p.qkv.resize(size_t(rows * 3 * p.w()));
  for (float& x : p.qkv) x = nd(gen);
  p.out.assign(size_t(rows * p.ld_out()), k_sentinel);
  return p;
}

// Head h of row i of segment-relative rows, exact (round = false) or under the kernel's contract (round = true).
std::vector<double> reference(const problem& p, float scale, bool round) {
  auto at = [&](int part, int64_t i, int64_t h, int64_t d) {
    const float x = p.qkv[size_t((p.r0 + i) * 3 * p.w() + part * p.w() + h * p.hd + d)];
    return double(round ? round_bf16(x) : x);
  };
  std::vector<double> ref(size_t(p.n * p.w()));
  std::vector<double> s(size_t(p.n));
  for (int64_t h = 0; h < p.heads; ++h)
    for (int64_t i = 0; i < p.n; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < p.n; ++j) {
        double dot = 0.0;
        for (int64_t d = 0; d < p.hd; ++d) dot += at(0, i, h, d) * at(1, j, h, d);
        s[size_t(j)] = dot * scale;
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < p.n; ++j) {
        const double e = std::exp(s[size_t(j)] - mx);
        s[size_t(j)] = round ? double(round_bf16(float(e))) : e;
        sum += s[size_t(j)];
      }
      for (int64_t d = 0; d < p.hd; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < p.n; ++j) acc += s[size_t(j)] * at(2, j, h, d);
        ref[size_t(i * p.w() + h * p.hd + d)] = acc / sum;
      }
    }
  return ref;
}

// Largest |out - ref| over the segment; every other entry of out must still hold the sentinel.
double max_error(const problem& p, const std::vector<double>& ref) {
  double err = 0.0;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c < p.ld_out(); ++c) {
      const float o = p.out[size_t(r * p.ld_out() + c)];
      const bool inside = r >= p.r0 && r < p.r0 + p.n && c < p.w();
      if (!inside) {
        EXPECT_EQ(o, k_sentinel) << "row " << r << " col " << c << " written outside the segment";
        continue;
      }
      err = std::max(err, std::fabs(double(o) - ref[size_t((r - p.r0) * p.w() + c)]));
    }
  return err;
}

struct shape {
  int64_t rows, heads, hd, r0, n;
};

TEST(attention_amx, emulated_tiles_meet_the_contract_and_the_bf16_bound) {
  const shape shapes[] = {{1, 1, 32, 0, 1},      {9, 2, 64, 2, 5},     {40, 1, 32, 3, 31},  {32, 2, 128, 0, 32},
                          {50, 3, 64, 7, 33},    {130, 2, 96, 10, 100}, {300, 1, 128, 0, 300}};
  for (const shape& sh : shapes)
    for (int threads : {1, 3}) {
      problem p = make(sh.rows, sh.heads, sh.hd, sh.r0, sh.n, uint64_t(sh.n * 131 + sh.hd + threads));
      thread_pool pool(threads);
      const float scale = 1.0f / std::sqrt(float(sh.hd));
      attention_dense_segment_amx_emulated(&pool, p.part(0), p.part(1), p.part(2), sh.r0, sh.n, sh.heads, sh.hd,
                                           scale, p.out_rows());
      const std::string what = "n=" + std::to_string(sh.n) + " hd=" + std::to_string(sh.hd) +
                               " heads=" + std::to_string(sh.heads) + " threads=" + std::to_string(threads);
      EXPECT_LE(max_error(p, reference(p, scale, true)), 1e-3) << what << ": against the contract";
      EXPECT_LE(max_error(p, reference(p, scale, false)), 2e-2) << what << ": against exact attention";
    }
}

TEST(attention_amx, a_long_segment_cuts_every_block) {
  // 1100 rows: 35 query blocks (the last of 12 rows), 69 key panels, 35 key chunks (the last of 12 keys).
  problem p = make(1103, 1, 64, 3, 1100, 7);
  thread_pool pool(2);
  const float scale = 0.125f;
  attention_dense_segment_amx_emulated(&pool, p.part(0), p.part(1), p.part(2), 3, 1100, 1, 64, scale, p.out_rows());
  EXPECT_LE(max_error(p, reference(p, scale, true)), 1e-3);
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
    problem hw = make(sh.rows, sh.heads, sh.hd, sh.r0, sh.n, 11), emu = hw;
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
    EXPECT_LE(max_error(hw, reference(hw, scale, false)), 2e-2);
  }
}

}  // namespace
}  // namespace autoglm::cpu
