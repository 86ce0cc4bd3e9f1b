// kernels/cpu/quant_linear.cpp: the quantized LINEAR driver (see quant_linear.h): run-time ISA selection,
// activation quantization, and the decode / prefill loops over the micro-kernel tables of quant_isa_*.cpp.
#include "kernels/cpu/quant_linear.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/quant_gemm.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace autoglm::cpu {

namespace qgemm {

wtype wtype_of(dtype t) {
  switch (t) {
    case dtype::I8: return wtype::I8;
    case dtype::Q8_0: return wtype::Q8_0;
    case dtype::Q4_0: return wtype::Q4_0;
    case dtype::Q4_K: return wtype::Q4_K;
    case dtype::Q5_K: return wtype::Q5_K;
    case dtype::Q6_K: return wtype::Q6_K;
    default: return wtype::COUNT;
  }
}

int64_t xq_row_bytes(wtype t, int64_t k) {
  const int64_t ng = k / group_elems(t);
  const int64_t bytes = k + 4 * ng + (is_k_quant(t) ? 2 * 16 * ng : 4 * ng);
  return (bytes + 63) / 64 * 64;
}

}  // namespace qgemm

namespace {

using namespace qgemm;

std::atomic<int> g_forced{int(quant_isa::COUNT)};

bool cpu_supports(quant_isa isa) {
  switch (isa) {
    case quant_isa::PORTABLE: return true;
#if defined(__x86_64__)
    case quant_isa::AVX2: {
      static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                             __builtin_cpu_supports("f16c");
      return ok;
    }
    case quant_isa::AVX512_VNNI: {
      static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                             __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vnni");
      return ok;
    }
#endif
#if defined(__aarch64__) && defined(__linux__)
    case quant_isa::NEON_DOTPROD: {
      static const bool ok = (getauxval(AT_HWCAP) & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
      return ok;
    }
#endif
    default: return false;
  }
}

const isa_table* table_of(quant_isa isa) {
  switch (isa) {
    case quant_isa::PORTABLE: return table_portable();
    case quant_isa::AVX2: return table_avx2();
    case quant_isa::AVX512_VNNI: return table_avx512_vnni();
    case quant_isa::NEON_DOTPROD: return table_neon_dotprod();
    default: return nullptr;
  }
}

// One row of x to its quantized form (the rule in quant_linear.h): qs, d per group, then the sums.
void quantize_x_row(const float* x, int64_t k, wtype t, uint8_t* out) {
  const int64_t ge = group_elems(t), ng = k / ge;
  int8_t* qs = reinterpret_cast<int8_t*>(out);
  float* d = reinterpret_cast<float*>(out + k);
  int32_t* sum = reinterpret_cast<int32_t*>(d + ng);
  int16_t* bsum = reinterpret_cast<int16_t*>(d + ng);
  for (int64_t g = 0; g < ng; ++g) {
    const float* xg = x + g * ge;
    int8_t* qg = qs + g * ge;
    float amax = 0.0f;
    for (int64_t e = 0; e < ge; ++e) amax = std::max(amax, std::fabs(xg[e]));
    d[g] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int64_t e = 0; e < ge; ++e) {
      // Round half to even by adding and removing 1.5 * 2^23 (no libm call); the clamp first keeps NaN and
      // infinities (which make id 0 or NaN) inside the int8 range.
      const float v = std::min(127.0f, std::max(-127.0f, xg[e] * id));
      qg[e] = int8_t(int((v + 12582912.0f) - 12582912.0f));
    }
    if (ge == 256) {
      for (int s = 0; s < 16; ++s) {
        int v = 0;
        for (int e = 0; e < 16; ++e) v += qg[16 * s + e];
        bsum[16 * g + s] = int16_t(v);
      }
    } else {
      int v = 0;
      for (int e = 0; e < 32; ++e) v += qg[e];
      sum[g] = v;
    }
  }
}

// x rows per prefill panel: quantized rows that fill about half of L2, so they stay there while every W tile
// passes by (each W tile is read once per panel); a multiple of the register tile's rows.
int64_t panel_rows(int64_t xq_bytes, int mr) {
  static const int64_t l2 = [] {
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return v > 0 ? int64_t(v) : int64_t(1) << 20;
  }();
  const int64_t rows = std::max<int64_t>(4 * mr, l2 / 2 / std::max<int64_t>(1, xq_bytes));
  return rows / mr * mr;
}

int64_t f32_row_stride(const tensor& t, const char* what) {
  AG_CHECK(t.type() == dtype::F32 && (t.n_dims() == 1 || t.stride(-1) == 4),
           std::string("quant linear: ") + what + " must be F32 with unit column stride");
  return t.row_stride() / 4;
}

}  // namespace

bool quant_linear_supports(dtype t) { return wtype_of(t) != wtype::COUNT; }

const char* quant_isa_name(quant_isa isa) {
  switch (isa) {
    case quant_isa::PORTABLE: return "portable";
    case quant_isa::AVX2: return "avx2";
    case quant_isa::AVX512_VNNI: return "avx512-vnni";
    case quant_isa::NEON_DOTPROD: return "neon-dotprod";
    default: return "?";
  }
}

// The CPU check comes first: an ISA file's table is built by code compiled for that ISA.
bool quant_isa_available(quant_isa isa) { return isa < quant_isa::COUNT && cpu_supports(isa) && table_of(isa); }

quant_isa quant_isa_selected() {
  const quant_isa forced = quant_isa(g_forced.load(std::memory_order_relaxed));
  if (forced != quant_isa::COUNT) return forced;
  if (portable_kernels_forced()) return quant_isa::PORTABLE;
  for (quant_isa isa : {quant_isa::AVX512_VNNI, quant_isa::AVX2, quant_isa::NEON_DOTPROD})
    if (quant_isa_available(isa)) return isa;
  return quant_isa::PORTABLE;
}

void force_quant_isa(quant_isa isa) {
  AG_CHECK(isa == quant_isa::COUNT || quant_isa_available(isa),
           std::string("force_quant_isa: ") + quant_isa_name(isa) + " is not available on this CPU or build");
  g_forced.store(int(isa));
}

void quant_linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y) {
  const tensor& W = w.weight;
  const wtype wt = wtype_of(W.type());
  AG_CHECK(wt != wtype::COUNT, std::string("quant linear: no integer kernel for ") + dtype_name(W.type()));
  const int64_t n = W.dim(0), k = W.dim(1), m = x.rows();
  AG_CHECK(k % group_elems(wt) == 0, "quant linear: '" + w.name + "' has " + std::to_string(k) + " inputs, not a " +
                                         "multiple of " + std::to_string(group_elems(wt)));
  const float* wscale = nullptr;
  if (wt == wtype::I8) {
    AG_CHECK(w.scales.type() == dtype::F32 && w.scales.is_contiguous() && w.scales.n_elements() == n,
             "quant linear: I8 weight '" + w.name + "' needs F32 scales [" + std::to_string(n) + "]");
    wscale = w.scales.ptr<float>();
  }
  const float* bias = nullptr;
  if (!w.bias.empty()) {
    AG_CHECK(w.bias.type() == dtype::F32 && w.bias.is_contiguous(), "quant linear: bias must be contiguous F32");
    bias = w.bias.ptr<float>();
  }
  const int64_t xs = f32_row_stride(x, "x"), ys = f32_row_stride(y, "y");
  if (m <= 0 || n <= 0) return;
  const float* xp = x.ptr<float>();
  float* yp = y.ptr<float>();

  const isa_table& tab = *table_of(quant_isa_selected());
  const mk_fn* mk = tab.mk[size_t(wt)];

  // x quantized once per call into the calling thread's buffer (kept between calls: no per-step allocation).
  thread_local aligned_buffer t_xq;
  const int64_t xq_bytes = xq_row_bytes(wt, k);
  t_xq.resize(size_t(m * xq_bytes));
  uint8_t* xq = static_cast<uint8_t*>(t_xq.data());
  parallel_for(kc.pool, m, std::max<int64_t>(1, 16384 / k), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) quantize_x_row(xp + r * xs, k, wt, xq + r * xq_bytes);
  });
  const xq_view xv{xq, xq_bytes, k, k / group_elems(wt)};

  const int nr = tab.nr, mr = tab.prefill_mr;
  const int64_t n_tiles = (n + nr - 1) / nr;
  const int64_t w_row_bytes = W.row_stride();
  auto make_tile = [&](int64_t t, int64_t i0) {
    tile tl;
    const int64_t n0 = t * nr;
    tl.w = static_cast<const uint8_t*>(W.data()) + n0 * w_row_bytes;
    tl.w_stride = w_row_bytes;
    tl.nr = int(std::min<int64_t>(nr, n - n0));
    tl.wscale = wscale ? wscale + n0 : nullptr;
    tl.bias = bias ? bias + n0 : nullptr;
    tl.x = xv;
    tl.i0 = i0;
    tl.y = yp + i0 * ys + n0;
    tl.y_stride = ys;
    return tl;
  };

  if (m < mr) {
    // Decode: each W tile streamed once for all (1 .. mr-1) rows; chunks of at least ~32 KiB of W.
    const int64_t grain = std::max<int64_t>(1, 32768 / (nr * w_row_bytes));
    parallel_for(kc.pool, n_tiles, grain, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) mk[m - 1](make_tile(t, 0));
    });
    return;
  }
  // Prefill: panels of x rows; within a chunk of W tiles, each tile runs over every row of the panel.
  const int64_t panel = panel_rows(xq_bytes, mr);
  for (int64_t r0 = 0; r0 < m; r0 += panel) {
    const int64_t r1 = std::min(m, r0 + panel);
    parallel_for(kc.pool, n_tiles, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int64_t i0 = r0; i0 < r1; i0 += mr) mk[std::min<int64_t>(mr, r1 - i0) - 1](make_tile(t, i0));
    });
  }
}

}  // namespace autoglm::cpu
