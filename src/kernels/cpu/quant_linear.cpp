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
#include "kernels/cpu/activations.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_features_arm.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/quant_gemm.h"
#include "kernels/cpu/quant_repack.h"

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
    case dtype::Q4_1: return wtype::Q4_1;
    case dtype::Q5_0: return wtype::Q5_0;
    case dtype::Q5_1: return wtype::Q5_1;
    default: return wtype::COUNT;
  }
}

int64_t xq_row_bytes(wtype t, int64_t k) {
  const int64_t ng = k / group_elems(t);
  const int64_t bytes = k + 4 * ng + (is_k_quant(t) ? 2 * 24 * ng : 4 * ng);
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
    case quant_isa::AVX512_GFNI: {
      static const bool ok = cpu_supports(quant_isa::AVX512_VNNI) && __builtin_cpu_supports("gfni");
      return ok;
    }
#endif
#if defined(__aarch64__)
    // The CPU's own bits (HWCAP_ASIMDDP, HWCAP2_I8MM; cpu_features_arm.cpp), not arm_usable_features: tests pick a
    // path with force_quant_isa. The i8mm table keeps the dotprod decode kernels, so it needs both.
    case quant_isa::NEON_DOTPROD: return arm_cpu_features().dotprod;
    case quant_isa::NEON_I8MM: return arm_cpu_features().dotprod && arm_cpu_features().i8mm;
#endif
    default: return false;
  }
}

const isa_table* table_of(quant_isa isa) {
  switch (isa) {
    case quant_isa::PORTABLE: return table_portable();
    case quant_isa::AVX2: return table_avx2();
    case quant_isa::AVX512_VNNI: return table_avx512_vnni();
    case quant_isa::AVX512_GFNI: return table_avx512_gfni();
    case quant_isa::NEON_DOTPROD: return table_neon_dotprod();
#if defined(__aarch64__)
    case quant_isa::NEON_I8MM: return table_neon_i8mm();
#endif
    default: return nullptr;
  }
}

// x rows per prefill panel: quantized rows that, beside one packed W tile, fill about half of L2, so they stay there
// while every W tile of the chunk passes by (each W tile is packed once per panel); a multiple of the register
// tile's rows, and at least 8 of those (packing a tile costs about as much as running 8 x rows against it).
int64_t panel_rows(int64_t xq_bytes, int64_t packed_bytes, int mr) {
  static const int64_t l2 = [] {
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return v > 0 ? int64_t(v) : int64_t(1) << 20;
  }();
  const int64_t rows = std::max<int64_t>(8 * mr, (l2 / 2 - packed_bytes) / std::max<int64_t>(1, xq_bytes));
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
    case quant_isa::AVX512_GFNI: return "avx512-gfni";
    case quant_isa::NEON_DOTPROD: return "neon-dotprod";
    case quant_isa::NEON_I8MM: return "neon-i8mm";
    default: return "?";
  }
}

// The CPU check comes first: an ISA file's table is built by code compiled for that ISA.
bool quant_isa_available(quant_isa isa) { return isa < quant_isa::COUNT && cpu_supports(isa) && table_of(isa); }

quant_isa quant_isa_selected() {
  const quant_isa forced = quant_isa(g_forced.load(std::memory_order_relaxed));
  if (forced != quant_isa::COUNT) return forced;
  if (portable_kernels_forced()) return quant_isa::PORTABLE;
  for (quant_isa isa : {quant_isa::AVX512_GFNI, quant_isa::AVX512_VNNI, quant_isa::AVX2, quant_isa::NEON_I8MM,
                        quant_isa::NEON_DOTPROD})
    if (quant_isa_available(isa)) return isa;
  return quant_isa::PORTABLE;
}

void force_quant_isa(quant_isa isa) {
  AG_CHECK(isa == quant_isa::COUNT || quant_isa_available(isa),
           std::string("force_quant_isa: ") + quant_isa_name(isa) + " is not available on this CPU or build");
  g_forced.store(int(isa));
}

namespace {

bool quant_linear_into(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y, tensor* gated);

// LINEAR of a repacked weight on a path that reads the file's layout (no AMX, no r16 decode for this ISA or row count):
// slabs of W rows unpacked into the thread's buffer, each run as a weight of its own into its columns of y.
void linear_unpacked(const kernel_context& kc, const tensor& x, const linear_weight& w, const r16_layout& L,
                     tensor& y) {
  const int64_t row_bytes = int64_t(dtype_row_bytes(L.type, L.k));
  const int64_t slab = std::max<int64_t>(k_r16_rows, (int64_t(8) << 20) / row_bytes / k_r16_rows * k_r16_rows);
  thread_local aligned_buffer t_rows;
  t_rows.resize(size_t(std::min(slab, L.n) * row_bytes));
  uint8_t* rows = static_cast<uint8_t*>(t_rows.data());
  const auto* packed = static_cast<const uint8_t*>(w.repacked.data());
  for (int64_t r0 = 0; r0 < L.n; r0 += slab) {
    const int64_t nr = std::min(slab, L.n - r0);
    parallel_for(kc.pool, nr, 64, [&](int64_t a, int64_t b) {
      r16_unpack_rows(L, packed, r0 + a, b - a, rows + a * row_bytes, row_bytes);
    });
    linear_weight part;
    part.weight = tensor::view(rows, L.type, {nr, L.k});
    if (!w.bias.empty()) part.bias = w.bias.cols_view(r0, nr);
    part.name = w.name;
    tensor y_part = y.cols_view(r0, nr);
    quant_linear_into(kc, x, part, y_part, nullptr);
  }
}

// LINEAR into y; or, with `gated` set and the wide prefill taking the call, y [m, n / 2] = silu(gate) * up of the
// product's halves straight from the register tiles (the bytes of LINEAR then SILU_MUL). Returns whether it did that.
bool quant_linear_into(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y, tensor* gated) {
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
  if (m <= 0 || n <= 0) return false;
  const float* xp = x.ptr<float>();
  float* yp = y.ptr<float>();
  // The weight's r16 copy (quant_repack.h), where load made one: read instead of W by the AMX prefill, the r16 decode
  // and the wide VNNI prefill (a tile's rows unpacked as it packs them); any other path gets the rows back in the
  // file's layout, a slab at a time.
  r16_layout r16;
  const uint8_t* packed = nullptr;
  if (!w.repacked.empty()) {
    r16 = r16_layout_of(W.type(), n, k);
    AG_CHECK(w.repacked.n_bytes() == size_t(r16.bytes()), "quant linear: '" + w.name + "': its repacked copy has " +
                                                              std::to_string(w.repacked.n_bytes()) + " bytes, not " +
                                                              std::to_string(r16.bytes()));
    packed = static_cast<const uint8_t*>(w.repacked.data());
  }
  if (use_amx_gemm(W.type(), m)) {
    // Prefill on AMX tiles (ROUNDED precision): bf16(x) . bf16(W) with F32 sums, gemm_amx.h.
    weight_rows rows{W.type(), static_cast<const uint8_t*>(W.data()), W.row_stride()};
    if (packed) rows = weight_rows{W.type(), packed, 0, &r16};
    gemm_bf16_amx(kc.pool, xp, xs, m, rows, n, k, bias, yp, ys, wscale);
    return false;
  }
  const isa_table& tab = *table_of(quant_isa_selected());
  const r16_decode_fn r16_decode = packed && r16_decode_available() ? r16_decode_avx512(W.type(), m) : nullptr;
  const bool wide_prefill = m > k_decode_rows && tab.wide[size_t(wt)];
  if (packed && !r16_decode && !wide_prefill) {
    linear_unpacked(kc, x, w, r16, y);
    return false;
  }

  // x quantized once per call into the calling thread's buffer (kept between calls: no per-step allocation).
  thread_local aligned_buffer t_xq;
  const int64_t xq_bytes = xq_row_bytes(wt, k);
  t_xq.resize(size_t(m * xq_bytes));
  uint8_t* xq = static_cast<uint8_t*>(t_xq.data());
  parallel_for(kc.pool, m, std::max<int64_t>(1, 16384 / k), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) tab.quantize(xp + r * xs, k, group_elems(wt), xq + r * xq_bytes);
  });
  const int64_t ng = k / group_elems(wt);
  const xq_view xv{xq, xq_bytes, k, ng};

  const int64_t n_tiles = (n + k_tile_rows - 1) / k_tile_rows;
  const int64_t w_row_bytes = W.row_stride();
  auto make_tile = [&](int64_t t, int64_t i0) {
    tile tl;
    const int64_t n0 = t * k_tile_rows;
    tl.w = static_cast<const uint8_t*>(W.data()) + n0 * w_row_bytes;
    tl.w_stride = w_row_bytes;
    tl.nr = int(std::min<int64_t>(k_tile_rows, n - n0));
    tl.wscale = wscale ? wscale + n0 : nullptr;
    tl.bias = bias ? bias + n0 : nullptr;
    tl.x = xv;
    tl.i0 = i0;
    tl.y = yp + i0 * ys + n0;
    tl.y_stride = ys;
    return tl;
  };

  if (r16_decode) {
    // Decode from the r16 copy: threads split its 16-row tiles, chunks of at least ~64 KiB.
    const r16_job job{&r16, packed, bias, xv, m, yp, ys};
    parallel_for(kc.pool, r16.n_tiles, std::max<int64_t>(1, 65536 / r16.tile_bytes),
                 [&](int64_t t0, int64_t t1) { r16_decode(job, t0, t1); });
    return false;
  }
  if (m <= k_decode_rows) {
    // Decode: each W tile streamed once for all rows; chunks of at least ~64 KiB of W.
    const decode_fn dk = tab.dk[size_t(wt)][m - 1];
    const int64_t grain = std::max<int64_t>(1, 65536 / (k_tile_rows * w_row_bytes));
    parallel_for(kc.pool, n_tiles, grain, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) dk(make_tile(t, 0));
    });
    return false;
  }
  if (const wide_fn wide = tab.wide[size_t(wt)]) {
    // Wide prefill: x laid out once in panels of wide_mr rows; threads split the W tiles of wide_rows rows.
    const int64_t n_panels = (m + tab.wide_mr - 1) / tab.wide_mr;
    thread_local aligned_buffer t_xw;
    t_xw.resize(size_t(n_panels * ng * tab.wide_x_group_bytes[size_t(wt)]));
    uint8_t* xw = static_cast<uint8_t*>(t_xw.data());
    parallel_for(kc.pool, n_panels, std::max<int64_t>(1, 4096 / k), [&](int64_t p0, int64_t p1) {
      tab.wide_pack_x[size_t(wt)](xv, m, p0, p1, xw);
    });
    wide_job job{static_cast<const uint8_t*>(W.data()), w_row_bytes, n, bias, xw, m, ng, yp, ys};
    if (packed) {  // each tile's rows unpacked from the r16 copy as the tile is packed
      job.w = nullptr;
      job.r16 = &r16;
      job.r16_data = packed;
    }
    int64_t outputs_per_tile = tab.wide_rows;
    if (gated) {
      job.n = n / 2;
      job.y = gated->ptr<float>();
      job.y_stride = f32_row_stride(*gated, "y");
      job.swiglu = true;
      outputs_per_tile = tab.wide_rows / 2;
    }
    parallel_for(kc.pool, (job.n + outputs_per_tile - 1) / outputs_per_tile, 1,
                 [&](int64_t t0, int64_t t1) { wide(job, t0, t1); });
    return gated != nullptr;
  }
  // Prefill: panels of x rows; each W tile is packed once per panel into the worker's buffer and runs against
  // every row of the panel, mr rows at a time.
  const int mr = tab.prefill_mr[size_t(wt)];
  const pack_fn pack = tab.pack[size_t(wt)];
  const packed_fn* pk = tab.pk[size_t(wt)];
  const int64_t packed_bytes = tab.packed_bytes[size_t(wt)] * ng;
  const int64_t panel = panel_rows(xq_bytes, packed_bytes, mr);
  // Groups per pass over the panel: about 16 KiB of packed W, which stays in L1 while the panel's rows pass.
  const int64_t block_groups = std::max<int64_t>(1, 16384 / tab.packed_bytes[size_t(wt)]);
  for (int64_t r0 = 0; r0 < m; r0 += panel) {
    const int64_t r1 = std::min(m, r0 + panel);
    parallel_for(kc.pool, n_tiles, 1, [&](int64_t t0, int64_t t1) {
      thread_local aligned_buffer t_packed, t_state;
      t_packed.resize(size_t(packed_bytes));
      t_state.resize(size_t(panel) * 16 * sizeof(float));
      uint8_t* buf = static_cast<uint8_t*>(t_packed.data());
      for (int64_t t = t0; t < t1; ++t) {
        pack(make_tile(t, r0), ng, buf);
        for (int64_t g0 = 0; g0 < ng; g0 += block_groups) {
          const int64_t g1 = std::min(ng, g0 + block_groups);
          for (int64_t i0 = r0; i0 < r1; i0 += mr)
            pk[std::min<int64_t>(mr, r1 - i0) - 1](make_tile(t, i0), buf, g0, g1, t_state.f32() + (i0 - r0) * 16);
        }
      }
    });
  }
  return false;
}

}  // namespace

void quant_linear_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& y) {
  quant_linear_into(kc, x, w, y, nullptr);
}

void quant_linear_swiglu_kernel(const kernel_context& kc, const tensor& x, const linear_weight& w, tensor& tmp,
                                tensor& y) {
  const int64_t n = y.cols();
  AG_CHECK(w.weight.dim(0) == 2 * n && tmp.cols() == 2 * n && tmp.rows() == x.rows() && y.rows() == x.rows(),
           "quant linear swiglu: '" + w.name + "' needs 2 x " + std::to_string(n) + " rows and tmp [m, 2n]");
  if (!quant_linear_into(kc, x, w, tmp, &y)) silu_mul_kernel(kc, tmp.cols_view(0, n), tmp.cols_view(n, n), y);
}

}  // namespace autoglm::cpu
