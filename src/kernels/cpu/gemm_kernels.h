// kernels/cpu/gemm_kernels.h: what the GEMM driver (gemm.cpp) needs from each ISA file (gemm_x86.cpp,
// gemm_neon.cpp): a register-tile micro-kernel per row count and a packer for W panels.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/gemm.h"

namespace autoglm::cpu::gemm_detail {

constexpr int max_mr = 4;

// One MR x NR register tile over `steps` k-steps of 8: for a < mr, r < NR, lane l,
//   tile[(a*NR + r)*8 + l] = fma(x[a*xs + 8s + l], wp[(s*NR + r)*8 + l], ...) chained over s,
// starting from the tile's current contents when `load`, else from zero. x rows are read in place (row stride
// xs floats); wp is one packed panel [steps][NR][8] (64-byte aligned); tile is MR*NR*8 floats, 64-byte aligned.
using micro_fn = void (*)(const float* x, int64_t xs, const float* wp, int64_t steps, float* tile, bool load);

// Packs one W panel: panel[(s*NR + r)*8 + l] = float(rows[r][8s + l]) for s < steps, r < n_rows (the rows'
// storage dtype, pointers already at the block's first column), and 0 for rows n_rows <= r < NR. F16/BF16 ->
// F32 is exact.
using pack_fn = void (*)(dtype type, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel);

// out[i] = the lane sum of gemm.h of the 8-lane accumulator acc[8i .. 8i + 8), for i < n.
using lane_sums_fn = void (*)(const float* acc, int n, float* out);

struct micro_kernels {
  int mr = 0, nr = 0;        // register tile: rows of x, rows of W (nr a multiple of 2, at most 16)
  micro_fn fn[max_mr] = {};  // fn[i] handles i + 1 rows of x (i + 1 <= mr)
  pack_fn pack = nullptr;
  lane_sums_fn lane_sums = nullptr;
  // Whether the tile keeps its FMAs fed with W panels streaming from L2 (AVX-512: 10 loads per 24 FMAs) rather
  // than needing its operands in L1 (AVX2, NEON: 7-16 loads per 12-24 FMAs); sizes KC (gemm.cpp).
  bool l2_panels = false;
};

void lane_sums_portable(const float* acc, int n, float* out);

// The portable packer for panels of nr rows.
void pack_portable(int nr, dtype type, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel);

micro_kernels portable_kernels();
#if defined(__x86_64__)
micro_kernels avx2_kernels();    // 3 x 4 tile of 8-lane ymm accumulators (16 registers)
micro_kernels avx512_kernels();  // 4 x 12 tile: zmm accumulators holding two W rows' 8 lanes each
bool cpu_has_avx512();           // AVX-512F usable (CPU and OS), and the AVX2 paths allowed
#endif
#if defined(__aarch64__)
micro_kernels neon_kernels();    // 2 x 4 tile, each 8-lane accumulator two q registers
// The decode tile: y for x rows [0, m) and W rows [n0, n0 + nr) (nr <= 4), W streamed in place.
void gemv_tile_neon(const float* x, int64_t xs, int64_t m, int64_t k, const weight_rows& w, int64_t n0, int64_t nr,
                    const float* bias, float* y, int64_t ys);
#endif

}  // namespace autoglm::cpu::gemm_detail
