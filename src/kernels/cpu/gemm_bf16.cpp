// kernels/cpu/gemm_bf16.cpp: the bf16 GEMM's driver (see gemm_bf16.h): the precision switch and its environment
// variable, the CPU/OS check, blocking, x packed once per super-block of rows, tasks over (row block, W panel) on
// the pool, and the vdpbf16ps peak probe's threads. The AVX-512 BF16 code is in gemm_avx512bf16.cpp.
#include "kernels/cpu/gemm_bf16.h"

#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "kernels/cpu/ceilings.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/kernel_util.h"

namespace autoglm::cpu {

namespace {

using namespace bf16_detail;

std::atomic<int>& precision_state() {
  static std::atomic<int> p{int(cpu_gemm_precision_from_env(std::getenv("AUTOGLM_CPU_BF16_GEMM")))};
  return p;
}

std::atomic<int64_t> g_min_rows{k_bf16_gemm_default_min_rows};

#if defined(__x86_64__)
// The OS saves the AVX-512 state (XCR0: SSE, AVX, opmask, ZMM0-15 upper halves, ZMM16-31), so zmm code may run.
bool os_saves_avx512_state() { return (os_saved_xstate() & 0xE6) == 0xE6; }

bool cpu_has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16") &&
                          os_saves_avx512_state();
  return has;
}

// Bytes of packed x per super-block (shared by the threads, read from L3) and of a W panel block (per thread,
// streamed from L2 by the tile): 64 rows x KC pairs x 4 bytes within a quarter of L2.
constexpr int64_t k_x_pack_bytes = int64_t(8) << 20;
constexpr int64_t k_max_row_block = 96 * k_bf16_mr;  // rows per task (each converted W element serves them all)

int64_t l2_bytes() {
  static const int64_t v = [] {
    const long s = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return std::max<int64_t>(s > 0 ? int64_t(s) : int64_t(1) << 20, int64_t(256) << 10);
  }();
  return v;
}

struct problem {
  const float* x;
  int64_t xs, m;
  weight_rows w;
  int64_t n, k, kp;  // kp = pairs of k
  const float* bias;
  float* y;
  int64_t ys;
  int64_t kc;        // pairs per KC-block (a multiple of 16 unless it is all of kp)
  int64_t mp_block;  // micro-panels per row block
};

struct scratch {
  aligned_buffer wp, tiles;
};

// x micro-panels [mp0, mp1) of the current super-block (rows i0 + 6 * mp0 ...; `rows` of them exist) against W
// rows [j0, j0 + 64).
void run_task(const problem& p, const uint32_t* xp, int64_t i0, int64_t rows, int64_t mp0, int64_t mp1, int64_t j0,
              scratch& sc) {
  const int nr = int(std::min<int64_t>(k_bf16_nr, p.n - j0));
  constexpr int64_t tile_floats = int64_t(k_bf16_mr) * k_bf16_nr;
  sc.wp.resize(size_t(p.kc * k_bf16_nr) * 4);
  sc.tiles.resize(size_t((mp1 - mp0) * tile_floats) * 4);
  uint32_t* wp = static_cast<uint32_t*>(sc.wp.data());
  float* tiles = sc.tiles.f32();
  const uint16_t* rows_at[k_bf16_nr];
  for (int64_t pc = 0; pc < p.kp; pc += p.kc) {
    const int64_t steps = std::min(p.kc, p.kp - pc);
    for (int r = 0; r < nr; ++r) rows_at[r] = static_cast<const uint16_t*>(p.w.row(j0 + r)) + 2 * pc;
    pack_w_avx512bf16(rows_at, nr, steps, p.k - 2 * pc, wp);
    const bool last = pc + steps == p.kp;
    for (int64_t ip = mp0; ip < mp1; ++ip) {
      float* tile = tiles + (ip - mp0) * tile_floats;
      tile_avx512bf16(xp + (ip * p.kp + pc) * k_bf16_mr, wp, steps, tile, pc > 0);
      if (last) {
        const int64_t a0 = ip * k_bf16_mr;
        store_tile_avx512bf16(tile, int(std::min<int64_t>(k_bf16_mr, rows - a0)), nr, p.bias ? p.bias + j0 : nullptr,
                              p.y + (i0 + a0) * p.ys + j0, p.ys);
      }
    }
  }
}
#endif

}  // namespace

cpu_gemm_precision cpu_gemm_precision_from_env(const char* value) {
  return env_value_is_off(value) ? cpu_gemm_precision::EXACT : cpu_gemm_precision::ROUNDED;
}

void set_cpu_gemm_precision(cpu_gemm_precision p) { precision_state().store(int(p)); }
cpu_gemm_precision get_cpu_gemm_precision() { return cpu_gemm_precision(precision_state().load()); }

void set_bf16_gemm_min_rows(int64_t rows) { g_min_rows.store(std::max<int64_t>(3, rows)); }
int64_t bf16_gemm_min_rows() { return g_min_rows.load(std::memory_order_relaxed); }

bool bf16_gemm_available() {
#if defined(__x86_64__)
  return cpu_has_avx512_bf16() && !portable_kernels_forced();
#else
  return false;
#endif
}

bool use_bf16_gemm(dtype type, int64_t m) {
  return type == dtype::BF16 && m >= bf16_gemm_min_rows() &&
         precision_state().load(std::memory_order_relaxed) == int(cpu_gemm_precision::ROUNDED) &&
         bf16_gemm_available();
}

void gemm_bf16(thread_pool* pool, const float* x, int64_t xs, int64_t m, const weight_rows& w, int64_t n, int64_t k,
               const float* bias, float* y, int64_t ys) {
  AG_CHECK(w.type == dtype::BF16, std::string("gemm_bf16: weights must be BF16, not ") + dtype_name(w.type));
  AG_CHECK(bf16_gemm_available(), "gemm_bf16: this CPU (or OS) does not offer AVX-512 BF16");
#if defined(__x86_64__)
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // empty dot products: y = bias
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * ys + j] = bias ? bias[j] : 0.0f;
    return;
  }
  problem p{x, xs, m, w, n, k, (k + 1) / 2, bias, y, ys, 0, 0};
  // KC: the W panel block (64 rows x KC pairs x 4 bytes) within a quarter of L2, in equal blocks of 16 pairs.
  const int64_t kc_max = std::max<int64_t>(64, l2_bytes() / 4 / (k_bf16_nr * 4) / 16 * 16);
  const int64_t n_kb = (p.kp + kc_max - 1) / kc_max;
  p.kc = n_kb == 1 ? p.kp : ((p.kp + n_kb - 1) / n_kb + 15) / 16 * 16;
  // Super-blocks of rows whose packed x fits k_x_pack_bytes; within one, row blocks of equal size up to
  // k_max_row_block rows.
  const int64_t panel_bytes = p.kp * k_bf16_mr * 4;
  const int64_t sb_panels = std::max<int64_t>(1, k_x_pack_bytes / panel_bytes);
  const int64_t n_panels_total = (m + k_bf16_mr - 1) / k_bf16_mr;
  thread_local aligned_buffer xbuf;
  xbuf.resize(size_t(std::min(sb_panels, n_panels_total) * panel_bytes));
  uint32_t* xp = static_cast<uint32_t*>(xbuf.data());
  const int64_t n_wp = (n + k_bf16_nr - 1) / k_bf16_nr;
  for (int64_t sp0 = 0; sp0 < n_panels_total; sp0 += sb_panels) {
    const int64_t n_mp = std::min(sb_panels, n_panels_total - sp0);
    const int64_t i0 = sp0 * k_bf16_mr, rows = std::min(m - i0, n_mp * k_bf16_mr);
    const int64_t pack_grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, k * k_bf16_mr));
    parallel_for(pool, n_mp, pack_grain, [&](int64_t b, int64_t e) {
      pack_x_avx512bf16(x + i0 * xs, xs, rows, k, b, e, xp);
    });
    const int64_t max_mp = k_max_row_block / k_bf16_mr, n_rb = (n_mp + max_mp - 1) / max_mp;
    const int64_t mp_block = (n_mp + n_rb - 1) / n_rb;
    parallel_for(pool, n_rb * n_wp, 1, [&](int64_t t0, int64_t t1) {
      thread_local scratch sc;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t rb = t % n_rb, jp = t / n_rb;
        const int64_t mp0 = rb * mp_block, mp1 = std::min(n_mp, mp0 + mp_block);
        run_task(p, xp, i0, rows, mp0, mp1, jp * k_bf16_nr, sc);
      }
    });
  }
#else
  (void)pool, (void)x, (void)xs, (void)m, (void)n, (void)k, (void)bias, (void)y, (void)ys;
#endif
}

bool bf16_dots_outrun_fma() {
  static const bool outrun = [] {
#if defined(__x86_64__)
    if (!bf16_gemm_available()) return false;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::strcmp(vendor, "AuthenticAMD") == 0;
#else
    return false;
#endif
  }();
  return outrun;
}

double measure_bf16_dot_peak(int n_threads) {
#if defined(__x86_64__)
  if (!cpu_has_avx512_bf16()) return 0.0;
  const int64_t iters = 10'000'000;
  return best_rate_on_threads(n_threads, 3, [&](int) { return dot_peak_probe_avx512bf16(iters); });
#else
  (void)n_threads;
  return 0.0;
#endif
}

}  // namespace autoglm::cpu
