// kernels/cpu/gemm_bf16.h: the prefill GEMM for BF16 weights on CPUs with AVX-512 BF16 (vdpbf16ps: Zen 4 and
// later, Cooper Lake, Sapphire Rapids), y[m, n] = bf16(x)[m, k] . W[n, k]^T + b, and the process-wide switch that
// decides when LINEAR takes it instead of the exact GEMM of gemm.h (internal to kernels/cpu; tests and tools set
// the switch).
//
// Numerics. x is rounded to bf16 (round to nearest even, as torch's bf16 linear rounds its input; vdpbf16ps treats
// denormal inputs, below 1.2e-38, as zero and flushes denormal sums), so each product carries up to 2^-8 relative
// error (bf16 keeps 8 significant bits): the arithmetic of torch's bf16 model and of the CUDA backend's ROUNDED
// GEMM (kernels/cuda/register.h). W is exact (BF16 storage). Every product is exact in F32 (8 x 8 significant bits)
// and each output is one F32 chain over the k pairs: acc = fma(x[2s+1], w[2s+1], acc), then acc = fma(x[2s],
// w[2s], acc), for s = 0, 1, ... (vdpbf16ps's order in Intel's SDM, each accumulation rounded; checked bit for bit
// on Zen 4), an odd k ending with the pair (x[k-1], 0); y = acc + bias.
// So an output depends only on its x row and W row: not on m, the tile it falls in, the blocking or the threads.
// F16 weights are not taken: vdpbf16ps needs both operands in bf16, and rounding F16 weights (11 significant bits)
// to bf16 would change the model itself (torch multiplies an F16 model in F16, 2^-11 per operand).
//
// When LINEAR takes it (linear.cpp; on a CPU with AMX tiles, gemm_amx.h takes 16+ rows first): BF16 weights, x
// with at least bf16_gemm_min_rows() rows (default k_bf16_gemm_default_min_rows = 8: from 8 rows it measured
// 1.4-1.7x the exact GEMM on Zen 4, 1.9-2.4x at 96+; at 4 rows both are bound by reading and packing W and tie, so
// decode batches of up to 7 rows keep the exact arithmetic), the CPU and OS offer AVX-512 F/BW/VL/BF16 and the
// portable paths are not forced, and the precision is ROUNDED. The precision starts from the environment:
// AUTOGLM_CPU_BF16_GEMM=0 (or off/false/no) selects EXACT, unset or anything else ROUNDED. Decode rows (1-2) always
// take the exact GEMV, so with ROUNDED a sequence's logits depend on how many rows its batch had (as on CUDA above 8
// rows); tests that hold the CPU to fp32 parity with Hugging Face or to bit-identical batching select EXACT
// (cpu_gemm_precision_scope).
//
// Structure: x is rounded and packed once per call (a bounded super-block of rows at a time) into micro-panels
// of k_bf16_mr rows, [k/2][MR] bf16 pairs, shared by all threads; tasks (row block x 64 W rows) convert their W
// rows into a panel [KC/2][64] of bf16 pairs (a 16 x 16 pair transpose per 16 rows) one KC-block at a time, and a
// 6 x 64 register tile (24 zmm accumulators, x pairs broadcast from memory) runs over it; the tile is parked
// between KC-blocks, which continues each output's chain unchanged.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm.h"

namespace autoglm::cpu {

enum class cpu_gemm_precision : uint8_t {
  EXACT,    // W decoded to F32, F32 FMAs (gemm.h): fp32 parity with Hugging Face, rows independent of the batch
  ROUNDED,  // x rounded to bf16 for BF16 weights from bf16_gemm_min_rows() rows on (default where the CPU has it)
};
void set_cpu_gemm_precision(cpu_gemm_precision p);
cpu_gemm_precision get_cpu_gemm_precision();
// The precision AUTOGLM_CPU_BF16_GEMM asks for (the process starts with it): "0", "off", "false" or "no" (any
// case) select EXACT; unset or anything else ROUNDED.
cpu_gemm_precision cpu_gemm_precision_from_env(const char* value);

constexpr int64_t k_bf16_gemm_default_min_rows = 8;
// Rows of x from which ROUNDED takes the bf16 GEMM (values below 3, the GEMM's own minimum, act as 3). Tests
// lower it to send every GEMM-sized shape through the kernel.
void set_bf16_gemm_min_rows(int64_t rows);
int64_t bf16_gemm_min_rows();

// The CPU and OS support the kernel (AVX-512 F, BW, VL and BF16 with the ZMM state enabled) and the portable paths
// are not forced (force_portable_kernels).
bool bf16_gemm_available();
// Whether LINEAR takes the bf16 GEMM for weights of `type` and m rows of x now (all of the conditions above).
bool use_bf16_gemm(dtype type, int64_t m);

// y [m, n] (row stride ys floats) = bf16(x) [m, k] (row stride xs) . W^T + bias (F32 [n] or null), split over
// the pool (null: the calling thread). W must be BF16; bf16_gemm_available() must hold.
void gemm_bf16(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n, int64_t k,
               const float* bias, float* y, int64_t ys);

// Peak throughput of vdpbf16ps in GFLOP/s (32 products and their adds per instruction count 64): n_threads threads
// each run 12 independent 16-lane chains out of registers; 0 when the CPU lacks AVX-512 BF16. The ceiling the bf16
// GEMM is reported against (the harness's --perf mode).
double measure_bf16_dot_peak(int n_threads);

// Whether vdpbf16ps does about twice the F32 work of 16-lane FMAs on this CPU: AMD's AVX-512 BF16 cores (Zen 4: 233
// vs 115 GFLOP/s per thread) yes; Intel's no (the Sapphire Rapids host of the GPU machine, 2026-12-06: vdpbf16ps 79
// GFLOP/s per thread, no more than its 8-lane FMAs at 75, and the bf16 dense attention at 13,416 patches 1,628 ms on
// 16 threads against 1,217 ms in F32). The bf16 attention paths (attention_avx512bf16.h) need it: their F32
// counterparts run on 16-lane FMAs. Decided from the CPU's vendor, not timed: every process on a machine must take
// the same kernels (a timing probe, on a loaded machine, let two processes of one machine disagree and give
// different numbers for the same input). False without AVX-512 BF16.
bool bf16_dots_outrun_fma();

// Sets the precision for a scope and restores the previous one (tests that need the exact path, tools).
class cpu_gemm_precision_scope {
 public:
  explicit cpu_gemm_precision_scope(cpu_gemm_precision p) : old_(get_cpu_gemm_precision()) {
    set_cpu_gemm_precision(p);
  }
  ~cpu_gemm_precision_scope() { set_cpu_gemm_precision(old_); }
  cpu_gemm_precision_scope(const cpu_gemm_precision_scope&) = delete;
  cpu_gemm_precision_scope& operator=(const cpu_gemm_precision_scope&) = delete;

 private:
  cpu_gemm_precision old_;
};

namespace bf16_detail {

constexpr int k_bf16_mr = 6;   // rows of x per register tile
constexpr int k_bf16_nr = 64;  // W rows per register tile and panel (4 zmm of 16 outputs)

// The AVX-512 BF16 pieces (gemm_avx512bf16.cpp); the driver in gemm_bf16.cpp calls them only when
// bf16_gemm_available().
//
// Rounds x rows [0, rows) (row stride xs, k columns) to bf16 and writes them as micro-panels of k_bf16_mr rows:
// xp[(p * kp + s) * MR + a] = (bf16 x[p*MR + a][2s]) | (bf16 x[p*MR + a][2s + 1]) << 16, kp = (k + 1) / 2, with
// x[., k] = 0 for an odd k and rows past `rows` (up to a whole micro-panel) zero. Micro-panels [p0, p1) only.
void pack_x_avx512bf16(const float* x, int64_t xs, int64_t rows, int64_t k, int64_t p0, int64_t p1, uint32_t* xp);
// W rows [0, n_rows) (n_rows <= 64; `rows[r]` at the block's first column, pairs [0, steps) of which the first
// `k_left` elements exist: an odd k's last pair is completed with 0, nothing past k_left is read) as a panel
// wp[s * 64 + r] = (w[r][2s]) | (w[r][2s + 1]) << 16; rows n_rows..63 zero. wp 64-byte aligned.
void pack_w_avx512bf16(const uint16_t* const* rows, int n_rows, int64_t steps, int64_t k_left, uint32_t* wp);
// The 6 x 64 tile over `steps` pairs: tile[a * 64 + c] continues (load) or starts from zero the chain of x
// micro-panel row a (xp: [steps][6] pairs) and panel row c (wp: [steps][64]). tile 64-byte aligned.
void tile_avx512bf16(const uint32_t* xp, const uint32_t* wp, int64_t steps, float* tile, bool load);
// The same tile with x row a's pairs at x_rows[a][0 .. steps) (dense attention's P.V: the softmax weights stay in
// their rows).
void tile_rows_avx512bf16(const uint32_t* const* x_rows, const uint32_t* wp, int64_t steps, float* tile, bool load);
// y[a * ys + c] = tile[a * 64 + c] + (bias ? bias[c] : 0) for a < n_rows, c < n_cols.
void store_tile_avx512bf16(const float* tile, int n_rows, int n_cols, const float* bias, float* y, int64_t ys);
// GFLOP done by `iters` rounds of 12 independent vdpbf16ps chains (the peak probe).
double dot_peak_probe_avx512bf16(int64_t iters);

}  // namespace bf16_detail

}  // namespace autoglm::cpu
