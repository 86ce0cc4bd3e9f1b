// tests/kernels/cases_quant.cpp: LINEAR with quantized weights (I8 + per-row scales, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q4_K, Q5_K, Q6_K). The reference dequantizes W (core's scalar dequantizer, or scale x int8 for I8) and quantizes
// x by the rule of kernels/cpu/quant_linear.h (its own code, reference.cpp), then accumulates in double: the
// kernels' integer sums are exact, so what is left is F32 rounding (one conversion, scale product and FMA per
// group, the final sums), and the tolerance is the F32 one. Shapes: 1, 2, 3 rows (decode, W read in place), 4 and
// more (packed prefill tiles of 4-6 rows with remainders of 1 .. 3 rows: an odd one leaves i8mm's last row pair
// half empty), one group and many (and more than one L1 block of a packed tile), W rows not a multiple of the
// 8-row tile, x and y as strided views, and more rows than one L2 panel of x. --perf adds the 9B model's decode
// shapes (weights streamed from memory) and 512-row prefill; perf weights are random blocks with sane scales
// (quantizing the 151552 x 4096 lm_head with a scale search would take minutes).
#include <cmath>
#include <cstring>

#include "core/quant_blocks.h"
#include "formats/quantize.h"
#include "harness.h"
#include "kernels/cpu/quant_repack.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {

struct qshape {
  int64_t m, n, groups;  // k = groups * the type's group (32, or 256 for k-quants)
  bool bias;
  int64_t x_pad, y_pad;
};

int64_t group_of(dtype t) { return t == dtype::Q4_K || t == dtype::Q5_K || t == dtype::Q6_K ? 256 : 32; }

// Random bytes with every f16 scale replaced by `scale`, so no block holds NaN, infinities or subnormals.
std::vector<uint8_t> random_blocks(dtype t, int64_t n, int64_t k, rng& r, float scale) {
  std::vector<uint8_t> b(dtype_row_bytes(t, k) * size_t(n));
  for (size_t i = 0; i + 8 <= b.size(); i += 8) {
    const uint64_t v = r.gen();
    std::memcpy(b.data() + i, &v, 8);
  }
  if (t == dtype::I8) return b;
  const size_t bb = dtype_block_bytes(t);
  const uint16_t h = f32_to_f16(scale);
  for (size_t off = 0; off < b.size(); off += bb) {
    if (t == dtype::Q6_K) {
      std::memcpy(b.data() + off + 208, &h, 2);
    } else {
      std::memcpy(b.data() + off, &h, 2);
      // The k-quants' dmin and Q4_1/Q5_1's min sit right after d.
      if (t == dtype::Q4_K || t == dtype::Q5_K || t == dtype::Q4_1 || t == dtype::Q5_1)
        std::memcpy(b.data() + off + 2, &h, 2);
    }
  }
  return b;
}

// swiglu: LINEAR_SWIGLU instead, over a stacked gate|up weight of 2n rows (y [m, n] = silu(gate) * up); add:
// LINEAR_ADD instead (y starts at random values and gets the product added).
test_case quant_case(dtype wt, int64_t m, int64_t n, int64_t k, bool bias, int64_t x_pad, int64_t y_pad, bool perf,
                     bool swiglu = false, bool add = false, bool in_cache = false) {
  test_case c;
  c.op = swiglu ? op_id::LINEAR_SWIGLU : add ? op_id::LINEAR_ADD : op_id::LINEAR;
  c.key = wt;
  c.perf = perf;
  c.stream = perf && m <= 3 && !in_cache;
  c.name = "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + (bias ? " bias" : "") +
           (x_pad || y_pad ? " strided" : "") + (in_cache ? " in-cache" : "");
  c.make = [wt, m, n_out = n, k, bias, x_pad, y_pad, perf, swiglu, add, name = c.name](exec_context& ctx) {
    rng r(seed_of(std::string(swiglu ? "quant swiglu" : add ? "quant add" : "quant linear") + name + dtype_name(wt)));
    const int64_t n = swiglu ? 2 * n_out : n_out;  // W rows
    const std::vector<float> x = r.normal(size_t(m * k));
    const std::vector<float> b = bias ? r.normal(size_t(n)) : std::vector<float>{};
    std::vector<uint8_t> wbytes;
    std::vector<float> wscale;  // I8
    if (perf) {
      wbytes = random_blocks(wt, n, k, r, 0.01f);
      if (wt == dtype::I8) wscale.assign(size_t(n), 0.01f);
    } else {
      const std::vector<float> wf = r.normal(size_t(n * k), 1.0f / std::sqrt(float(k)));
      if (wt == dtype::I8) {
        wbytes.resize(size_t(n * k));
        wscale.resize(size_t(n));
        quant::quantize_rows_i8(wf.data(), reinterpret_cast<int8_t*>(wbytes.data()), wscale.data(), n, k);
      } else {
        wbytes.resize(dtype_row_bytes(wt, k) * size_t(n));
        quant::quantize_rows(wt, wf.data(), wbytes.data(), n, k);
      }
    }
    padded xv = make_padded(ctx, dtype::F32, m, k, x_pad, x);
    const std::vector<float> y0 = add ? r.normal(size_t(m * n_out)) : std::vector<float>{};
    padded yv = make_padded(ctx, dtype::F32, m, n_out, y_pad, y0);
    padded tv = make_padded(ctx, dtype::F32, m, n, 0);
    linear_weight lw;
    lw.weight = upload(ctx, wt, {n, k}, wbytes).t;
    if (wt == dtype::I8) lw.scales = upload_f(ctx, dtype::F32, {n}, wscale);
    if (bias) lw.bias = upload_f(ctx, dtype::F32, {n}, b);
    if (selected_r16() && cpu::r16_type(wt)) lw.repacked = cpu::r16_pack(lw.weight, nullptr);
    lw.name = "harness.quant_linear";
    instance inst;
    inst.run = [&ctx, xv, yv, tv, lw, swiglu, add]() mutable {
      if (swiglu) ops::linear_swiglu(ctx, xv.t, lw, tv.t, yv.t);
      else if (add) ops::linear_add(ctx, xv.t, lw, tv.t, yv.t);
      else ops::linear(ctx, xv.t, lw, yv.t);
    };
    inst.output = [&ctx, yv] { return download(ctx, yv.buf.t); };
    inst.check = [&ctx, yv, x, b, y0, wbytes, wscale, wt, m, n, n_out, k, swiglu, add]() {
      std::vector<float> w(size_t(n * k));
      const size_t rb = dtype_row_bytes(wt, k);
      for (int64_t j = 0; j < n; ++j) {
        if (wt == dtype::I8)
          quant::dequantize_row_i8(reinterpret_cast<const int8_t*>(wbytes.data()) + j * k, wscale[size_t(j)],
                                   w.data() + j * k, k);
        else
          quant::dequantize_row(wt, wbytes.data() + size_t(j) * rb, w.data() + j * k, k);
      }
      const ref::vecd xq = ref::quantize_activations(x, m, k, group_of(wt));
      ref::vecd y = ref::linear_d(xq, w, b, m, n, k);
      if (add) {
        for (size_t i = 0; i < y.size(); ++i) y[i] += double(y0[i]);
        return check_output(ctx, yv, y, tolerance(op_id::LINEAR_ADD, wt));
      }
      if (!swiglu) return check_output(ctx, yv, y, tolerance(op_id::LINEAR, wt));
      ref::vecd gated(size_t(m * n_out));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n_out; ++j) {
          const double g = y[size_t(i * n + j)], u = y[size_t(i * n + n_out + j)];
          gated[size_t(i * n_out + j)] = g / (1.0 + std::exp(-g)) * u;
        }
      return check_output(ctx, yv, gated, tolerance(op_id::LINEAR_SWIGLU, wt));
    };
    inst.bytes = double(wbytes.size()) + 4.0 * double(m * (k + n));
    inst.flops = 2.0 * double(m) * double(n) * double(k);
    return inst;
  };
  return c;
}

}  // namespace

void add_quant_linear_cases(std::vector<test_case>& out) {
  const qshape shapes[] = {
      {1, 1, 1, false, 0, 0},  {1, 7, 3, false, 3, 2},  {2, 9, 2, true, 0, 5},   {3, 5, 5, true, 7, 1},
      {4, 6, 1, false, 0, 0},  {5, 13, 4, true, 0, 0},  {17, 30, 3, true, 2, 0}, {64, 37, 2, false, 16, 3},
      {1, 300, 8, false, 0, 0},  {7, 11, 2, true, 1, 1},
  };
  for (dtype t : {dtype::I8, dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K}) {
    const int64_t g = group_of(t);
    for (const qshape& s : shapes) out.push_back(quant_case(t, s.m, s.n, s.groups * g, s.bias, s.x_pad, s.y_pad, false));
    // More rows than one L2 panel of quantized x holds at k = 8192 (60-120 rows): several panels.
    out.push_back(quant_case(t, 130, 9, 8192, true, 0, 0, false));
    // LINEAR_SWIGLU over the same kernels: decode and prefill rows, bias, strided views.
    out.push_back(quant_case(t, 1, 7, 2 * g, true, 3, 2, false, true));
    out.push_back(quant_case(t, 17, 13, g, false, 0, 1, false, true));
    // LINEAR_ADD (a projection into the residual stream): decode and prefill rows, bias, strided views.
    out.push_back(quant_case(t, 1, 7, 2 * g, true, 3, 2, false, false, true));
    out.push_back(quant_case(t, 17, 13, g, false, 0, 1, false, false, true));
  }
  // The 9B model (hidden 4096, ffn 13696, vocab 151552): decode of one token (and a batch of 3) through q/o, qkv,
  // the fused gate_up, down and lm_head; a 512-token prefill chunk. Q4_K and the other k-quants cannot hold a row of
  // 13696 (not a multiple of 256): files store down_proj in a fallback type (Q5_0 in Q4_K files, Q5_1 in Q5_K
  // files, Q8_0 in Q6_K files: formats/quantize.h fallback_type). Then the 512-token prefill of the 1.5B peer
  // dimensions (bench/peer: hidden 2048, ffn 6848): q/o, the fused gate_up, down; and their decode.
  // A decode shape small enough to stay in one core's L2 (0.6 MB of Q4_0) and run without
  // streaming copies: the kernels' instruction ceiling, apart from the memory.
  struct pshape {
    int64_t m, n, k;
    bool in_cache = false;
  };
  const pshape perf_shapes[] = {{1, 4096, 4096},     {1, 4608, 4096},   {3, 4096, 4096},    {1, 27392, 4096},
                                {1, 4096, 13696},    {1, 151552, 4096}, {512, 4096, 4096},  {512, 27392, 4096},
                                {512, 4096, 13696},  {512, 2048, 2048}, {512, 13696, 2048}, {512, 2048, 6848},
                                {1, 2048, 2048},     {1, 13696, 2048},  {1, 2048, 6848},    {1, 256, 4096, true}};
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K, dtype::I8})
    for (const pshape& s : perf_shapes)
      if (s.k % group_of(t) == 0)
        out.push_back(quant_case(t, s.m, s.n, s.k, false, 0, 0, true, false, false, s.in_cache));
}

}  // namespace autoglm::harness
