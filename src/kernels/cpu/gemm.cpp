// kernels/cpu/gemm.cpp: the GEMM driver (see gemm.h): cache blocking sized from the caches, W packing, tasks
// over (row block, output block) on the pool, tile finishing (lane sum, k tail, bias), the portable micro-kernel
// and the ISA choice.
#include "kernels/cpu/gemm.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm_kernels.h"

namespace autoglm::cpu {

namespace gemm_detail {

namespace {

// a * b + c as the SIMD paths compute it (one rounding) where the target has hardware FMA; a separate multiply
// and add elsewhere (a software fma would make the portable path unusably slow on such CPUs).
inline float madd(float a, float b, float c) {
#if defined(FP_FAST_FMAF)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// The same 3 x 4 tile in plain C++ (the compiler vectorizes the lane loop).
template <int MR>
void micro_portable(const float* x, int64_t xs, const float* wp, int64_t steps, float* tile, bool load) {
  constexpr int NR = 4;
  float acc[MR][NR][8];
  for (int a = 0; a < MR; ++a)
    for (int r = 0; r < NR; ++r)
      for (int l = 0; l < 8; ++l) acc[a][r][l] = load ? tile[(a * NR + r) * 8 + l] : 0.0f;
  for (int64_t s = 0; s < steps; ++s) {
    const float* w = wp + s * (NR * 8);
    for (int a = 0; a < MR; ++a) {
      const float* xa = x + a * xs + 8 * s;
      for (int r = 0; r < NR; ++r)
        for (int l = 0; l < 8; ++l) acc[a][r][l] = madd(xa[l], w[r * 8 + l], acc[a][r][l]);
    }
  }
  for (int a = 0; a < MR; ++a)
    for (int r = 0; r < NR; ++r)
      for (int l = 0; l < 8; ++l) tile[(a * NR + r) * 8 + l] = acc[a][r][l];
}

}  // namespace

void pack_portable(int nr, dtype type, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel) {
  float buf[8];
  for (int r = 0; r < nr; ++r)
    for (int64_t s = 0; s < steps; ++s) {
      float* dst = panel + (s * nr + r) * 8;
      if (r < n_rows) {
        convert_to_f32_ref(type, rows[r] + s * 8 * int64_t(dtype_size(type)), buf, 8);
        std::memcpy(dst, buf, sizeof buf);
      } else {
        std::memset(dst, 0, sizeof buf);
      }
    }
}

void lane_sums_portable(const float* acc, int n, float* out) {
  for (int i = 0; i < n; ++i) {
    const float* v = acc + 8 * i;
    out[i] = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
  }
}

micro_kernels portable_kernels() {
  micro_kernels k;
  k.mr = 3;
  k.nr = 4;
  k.fn[0] = micro_portable<1>;
  k.fn[1] = micro_portable<2>;
  k.fn[2] = micro_portable<3>;
  k.pack = [](dtype t, const uint8_t* const* rows, int n_rows, int64_t steps, float* panel) {
    pack_portable(4, t, rows, n_rows, steps, panel);
  };
  k.lane_sums = lane_sums_portable;
  return k;
}

}  // namespace gemm_detail

namespace {

using namespace gemm_detail;

int64_t cache_bytes(int name, int64_t fallback) {
  const long v = sysconf(name);
  return v > 0 ? int64_t(v) : fallback;
}

struct blocking {
  int64_t mc, nc, kc;
};

// Measured on a Zen 4 core (32 KiB L1, 1 MiB L2) at 256 x 4096 x 4096, one thread: the AVX-512 micro-kernel runs
// at ~98% of the FMA peak with its W panel streaming from L2, so there KC is not held to L1 and what costs is
// parking tiles between KC-blocks and packing, so both blocks are large (KC up to 2.7k, MC up to 256: 85-88% of
// peak overall, against 78-84% with KC = 320). The AVX2 tile needs its x micro-panel and W panel in L1 (72-75%
// with KC ~ 512, 69% at 2k). NC: 4 panels (a task's packed W block, NC x KC floats, within half of L2). MC: the
// rows that reuse each converted W element; its parked tiles (MC x NC 8-lane accumulators) fill the rest of 3/4
// of L2; 64 <= MC <= 256, in row blocks of equal size.
blocking choose_blocking(const micro_kernels& mk, int64_t m, int64_t k8) {
  static const int64_t l1 = std::max<int64_t>(cache_bytes(_SC_LEVEL1_DCACHE_SIZE, 32 << 10), 16 << 10);
  static const int64_t l2 = std::max<int64_t>(cache_bytes(_SC_LEVEL2_CACHE_SIZE, 1 << 20), 256 << 10);
  blocking b;
  b.nc = 4 * int64_t(mk.nr);
  const int64_t kc_max = mk.l2_panels ? std::max<int64_t>(256, l2 / 2 / (b.nc * 4) / 8 * 8)
                                      : std::max<int64_t>(64, l1 / 2 / ((mk.mr + mk.nr) * 4) / 8 * 8);
  const int64_t n_kb = std::max<int64_t>(1, (k8 + kc_max - 1) / kc_max);
  b.kc = std::max<int64_t>(8, ((k8 + n_kb - 1) / n_kb + 7) / 8 * 8);
  const int64_t mc_max = std::clamp<int64_t>((l2 * 3 / 4 - b.nc * b.kc * 4) / (b.nc * 32), 64, 256);
  const int64_t n_ib = (m + mc_max - 1) / mc_max;
  b.mc = ((m + n_ib - 1) / n_ib + mk.mr - 1) / mk.mr * mk.mr;
  return b;
}

const micro_kernels& kernels_for(gemm_isa isa) {
  static const micro_kernels portable = portable_kernels();
#if defined(__x86_64__)
  static const micro_kernels avx2 = avx2_kernels();
  static const micro_kernels avx512 = avx512_kernels();
  if (isa == gemm_isa::AVX2) return avx2;
  if (isa == gemm_isa::AVX512) return avx512;
#endif
#if defined(__aarch64__)
  static const micro_kernels neon = neon_kernels();
  if (isa == gemm_isa::NEON) return neon;
#endif
  return portable;
}

inline float weight_at(const weight_rows& w, int64_t r, int64_t j) {
  const void* p = w.row(r);
  if (w.type == dtype::F32) return static_cast<const float*>(p)[j];
  if (w.type == dtype::BF16) return bf16_to_f32(static_cast<const uint16_t*>(p)[j]);
  return f16_to_f32(static_cast<const uint16_t*>(p)[j]);
}

struct problem {
  const micro_kernels* mk;
  bool fused;  // the micro-kernel's multiply-adds are FMAs: so is the tail
  const float* x;
  int64_t xs, m;
  weight_rows w;
  int64_t n, k, k8;
  const float* bias;
  float* y;
  int64_t ys;
  blocking b;
};

// Per-thread scratch: packed W panels, parked tiles, the W tails.
struct scratch {
  aligned_buffer wp, tiles, tails;
};

// Finishes one tile into y: rows [i0, i0 + mr) of x, W rows [j0, j0 + nr) (panel-local index r0 into tails).
void finish_tile(const problem& p, const float* tile, int64_t i0, int mr, int64_t j0, int nr, const float* tails) {
  const int NR = p.mk->nr;
  const int64_t n_tail = p.k - p.k8;
  float sums[16];
  for (int a = 0; a < mr; ++a) {
    const float* xr = p.x + (i0 + a) * p.xs + p.k8;
    float* yr = p.y + (i0 + a) * p.ys;
    p.mk->lane_sums(tile + a * NR * 8, nr, sums);
    for (int r = 0; r < nr; ++r) {
      float s = sums[r];
      const float* wt = tails + r * 8;
      for (int64_t j = 0; j < n_tail; ++j) s = p.fused ? std::fma(xr[j], wt[j], s) : xr[j] * wt[j] + s;
      yr[j0 + r] = s + (p.bias ? p.bias[j0 + r] : 0.0f);
    }
  }
}

// One task: x rows [i0, i0 + mrows) against W rows [n0, n0 + nrows).
void run_task(const problem& p, int64_t i0, int64_t mrows, int64_t n0, int64_t nrows, scratch& sc) {
  const micro_kernels& mk = *p.mk;
  const int MR = mk.mr, NR = mk.nr;
  const int64_t n_pan = (nrows + NR - 1) / NR, n_mp = (mrows + MR - 1) / MR;
  const int64_t tile_floats = int64_t(MR) * NR * 8;
  const int64_t esize = int64_t(dtype_size(p.w.type));
  sc.wp.resize(size_t(n_pan * NR * p.b.kc) * 4);
  sc.tiles.resize(size_t(n_pan * n_mp * tile_floats) * 4);
  sc.tails.resize(size_t(n_pan * NR * 8) * 4);
  float* tiles = sc.tiles.f32();
  float* tails = sc.tails.f32();
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t j = p.k8; j < p.k; ++j) tails[r * 8 + (j - p.k8)] = weight_at(p.w, n0 + r, j);
  auto finish = [&](int64_t jp, int64_t ip) {
    const int64_t a0 = i0 + ip * MR, j0 = n0 + jp * NR;
    finish_tile(p, tiles + (ip * n_pan + jp) * tile_floats, a0, int(std::min<int64_t>(MR, i0 + mrows - a0)), j0,
                int(std::min<int64_t>(NR, n0 + nrows - j0)), tails + jp * NR * 8);
  };
  if (p.k8 == 0) {  // k < 8: the tails are the whole dot
    std::fill(tiles, tiles + n_pan * n_mp * tile_floats, 0.0f);
    for (int64_t jp = 0; jp < n_pan; ++jp)
      for (int64_t ip = 0; ip < n_mp; ++ip) finish(jp, ip);
    return;
  }
  const uint8_t* rows[16];
  for (int64_t pc = 0; pc < p.k8; pc += p.b.kc) {
    const int64_t kc = std::min(p.b.kc, p.k8 - pc), steps = kc / 8;
    float* wp = sc.wp.f32();
    // Pack W rows [n0, n0 + nrows) x columns [pc, pc + kc) as panels [steps][NR][8]; rows past the block are 0.
    for (int64_t jp = 0; jp < n_pan; ++jp) {
      const int n_rows = int(std::min<int64_t>(NR, nrows - jp * NR));
      for (int r = 0; r < n_rows; ++r) rows[r] = static_cast<const uint8_t*>(p.w.row(n0 + jp * NR + r)) + pc * esize;
      mk.pack(p.w.type, rows, n_rows, steps, wp + jp * NR * kc);
    }
    // While this block computes, the next one's W rows come into L2 (a few lines before each micro-kernel call):
    // packing reads short runs of many rows, which the hardware prefetchers do not see coming.
    const int64_t next = pc + kc, next_kc = std::min(p.b.kc, p.k8 - next);
    const int64_t lines_per_row = next < p.k8 ? (next_kc * esize + 63) / 64 : 0;
    const int64_t n_lines = lines_per_row * nrows, n_calls = n_pan * n_mp;
    const int64_t per_call = (n_lines + n_calls - 1) / n_calls;
    int64_t line = 0;
    const bool last = pc + kc == p.k8;
    for (int64_t ip = 0; ip < n_mp; ++ip)
      for (int64_t jp = 0; jp < n_pan; ++jp) {
        for (int64_t e = std::min(n_lines, line + per_call); line < e; ++line)
          __builtin_prefetch(static_cast<const uint8_t*>(p.w.row(n0 + line / lines_per_row)) + next * esize +
                                 (line % lines_per_row) * 64,
                             0, 2);
        const int64_t a0 = i0 + ip * MR;
        const int mr = int(std::min<int64_t>(MR, i0 + mrows - a0));
        mk.fn[mr - 1](p.x + a0 * p.xs + pc, p.xs, wp + jp * NR * kc, steps, tiles + (ip * n_pan + jp) * tile_floats,
                      pc > 0);
        if (last) finish(jp, ip);
      }
  }
}

}  // namespace

const char* gemm_isa_name(gemm_isa isa) {
  switch (isa) {
    case gemm_isa::PORTABLE: return "portable";
    case gemm_isa::AVX2: return "avx2";
    case gemm_isa::AVX512: return "avx512";
    case gemm_isa::NEON: return "neon";
  }
  return "?";
}

bool gemm_isa_available(gemm_isa isa) {
  switch (isa) {
    case gemm_isa::PORTABLE: return true;
#if defined(__x86_64__)
    case gemm_isa::AVX2: return cpu_has_avx2();
    case gemm_isa::AVX512: return cpu_has_avx512();
#endif
#if defined(__aarch64__)
    case gemm_isa::NEON: return !portable_kernels_forced();
#endif
    default: return false;
  }
}

gemm_isa gemm_best_isa() {
  for (gemm_isa isa : {gemm_isa::AVX512, gemm_isa::AVX2, gemm_isa::NEON})
    if (gemm_isa_available(isa)) return isa;
  return gemm_isa::PORTABLE;
}

void gemm_f32(thread_pool* pool, gemm_isa isa, const float* x, int64_t xs, int64_t m, const weight_rows& w,
              int64_t n, int64_t k, const float* bias, float* y, int64_t ys) {
  AG_CHECK(w.type == dtype::F32 || w.type == dtype::BF16 || w.type == dtype::F16,
           std::string("gemm: unsupported weight dtype ") + dtype_name(w.type));
  AG_CHECK(gemm_isa_available(isa), std::string("gemm: ") + gemm_isa_name(isa) + " kernels are not available");
  if (m <= 0 || n <= 0) return;
  problem p;
  p.mk = &kernels_for(isa);
#if defined(FP_FAST_FMAF)
  p.fused = true;
#else
  p.fused = isa != gemm_isa::PORTABLE;
#endif
  p.x = x;
  p.xs = xs;
  p.m = m;
  p.w = w;
  p.n = n;
  p.k = k;
  p.k8 = k / 8 * 8;
  p.bias = bias;
  p.y = y;
  p.ys = ys;
  p.b = choose_blocking(*p.mk, m, p.k8);
  const int64_t n_ic = (m + p.b.mc - 1) / p.b.mc, n_jc = (n + p.b.nc - 1) / p.b.nc;
  // Neighbouring tasks share a block of the larger operand and walk the smaller one, which then stays in L3
  // while the larger is read from memory about once (x of a 13k-patch image is 80 MB, a 9B MLP weight 224 MB).
  const bool rows_inner = double(n) * double(dtype_size(w.type)) >= double(m) * 4.0;
  const int64_t task_flops = p.b.mc * p.b.nc * std::max<int64_t>(k, 1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / task_flops);
  parallel_for(pool, n_ic * n_jc, grain, [&](int64_t t0, int64_t t1) {
    thread_local scratch sc;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ic = rows_inner ? t % n_ic : t / n_jc, jc = rows_inner ? t / n_ic : t % n_jc;
      const int64_t i0 = ic * p.b.mc, n0 = jc * p.b.nc;
      run_task(p, i0, std::min(p.b.mc, m - i0), n0, std::min(p.b.nc, n - n0), sc);
    }
  });
}

float dot8_canonical(const float* x, const float* w, int64_t k) {
  float acc[8] = {};
  const int64_t k8 = k / 8 * 8;
  for (int64_t j = 0; j < k8; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] = madd(x[j + l], w[j + l], acc[l]);
  float s;
  lane_sums_portable(acc, 1, &s);
  for (int64_t j = k8; j < k; ++j) s = madd(x[j], w[j], s);
  return s;
}

}  // namespace autoglm::cpu
