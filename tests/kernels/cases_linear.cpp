// tests/kernels/cases_linear.cpp: LINEAR (and LINEAR_SWIGLU, the gate|up projection with its gate) for F32/F16/BF16 weights: decode (1-2 rows) and prefill shapes, sizes
// that are not multiples of any register tile (3/4 x rows, 4/12 W rows), of the 8-lane vectors or of the GEMM's
// blocks (k under 8, k over several KC-blocks, m over several row blocks up to 1024, n over several output
// blocks), x and y as views with a row stride (y a column range of a wider buffer, like q inside qkv), with and
// without bias; --perf adds the 9B model's decode and prefill shapes and the vision tower's.
#include <cmath>

#include "harness.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {

struct linear_shape {
  int64_t m, n, k;
  bool bias;
  int64_t x_pad, y_pad;
  bool perf;
};

// The case's op, key, flags and name ("m=.. n=.. k=.. [bias] [strided]"); make is the caller's.
test_case case_for(op_id op, dtype wt, const linear_shape& s) {
  test_case c;
  c.op = op;
  c.key = wt;
  c.perf = s.perf;
  c.stream = s.perf && s.m <= 2;
  c.name = "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
           (s.bias ? " bias" : "") + (s.x_pad || s.y_pad ? " strided" : "");
  return c;
}

test_case linear_case(dtype wt, const linear_shape& s) {
  test_case c = case_for(op_id::LINEAR, wt, s);
  c.make = [wt, s, name = c.name](exec_context& ctx) {
    rng r(seed_of("linear" + name + dtype_name(wt)));
    const std::vector<float> x = r.normal(size_t(s.m * s.k));
    const std::vector<float> w = decode(wt, encode(wt, r.normal(size_t(s.n * s.k), 1.0f / std::sqrt(float(s.k)))));
    const std::vector<float> bias = s.bias ? r.normal(size_t(s.n)) : std::vector<float>{};
    padded xv = make_padded(ctx, dtype::F32, s.m, s.k, s.x_pad, x);
    padded yv = make_padded(ctx, dtype::F32, s.m, s.n, s.y_pad);
    linear_weight lw;
    lw.weight = upload_f(ctx, wt, {s.n, s.k}, w);
    if (s.bias) lw.bias = upload_f(ctx, dtype::F32, {s.n}, bias);
    lw.name = "harness.linear";
    instance inst;
    inst.run = [&ctx, xv, yv, lw]() mutable { ops::linear(ctx, xv.t, lw, yv.t); };
    inst.output = [&ctx, yv] { return download(ctx, yv.buf.t); };
    // Keyed by the weight's type: CUDA's tensor-core GEMM rounds x to F16/BF16 (harness.cpp's tolerance()).
    inst.check = [&ctx, yv, x, w, bias, s, wt]() {
      return check_output(ctx, yv, ref::linear(x, w, bias, s.m, s.n, s.k), tolerance(op_id::LINEAR, wt));
    };
    inst.bytes = double(lw.weight.n_bytes()) + 4.0 * double(s.m * (s.k + s.n));
    inst.flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
    return inst;
  };
  return c;
}

// LINEAR_SWIGLU: y [m, n] = silu(x . W[0:n]^T) * (x . W[n:2n]^T) over a stacked gate|up weight of 2n rows.
test_case swiglu_case(dtype wt, const linear_shape& s) {
  test_case c = case_for(op_id::LINEAR_SWIGLU, wt, s);
  c.make = [wt, s, name = c.name](exec_context& ctx) {
    rng r(seed_of("linear_swiglu" + name + dtype_name(wt)));
    const int64_t n2 = 2 * s.n;
    const std::vector<float> x = r.normal(size_t(s.m * s.k));
    const std::vector<float> w = decode(wt, encode(wt, r.normal(size_t(n2 * s.k), 1.0f / std::sqrt(float(s.k)))));
    const std::vector<float> bias = s.bias ? r.normal(size_t(n2)) : std::vector<float>{};
    padded xv = make_padded(ctx, dtype::F32, s.m, s.k, s.x_pad, x);
    padded yv = make_padded(ctx, dtype::F32, s.m, s.n, s.y_pad);
    padded tv = make_padded(ctx, dtype::F32, s.m, n2, 0);
    linear_weight lw;
    lw.weight = upload_f(ctx, wt, {n2, s.k}, w);
    if (s.bias) lw.bias = upload_f(ctx, dtype::F32, {n2}, bias);
    lw.name = "harness.gate_up";
    instance inst;
    inst.run = [&ctx, xv, yv, tv, lw]() mutable { ops::linear_swiglu(ctx, xv.t, lw, tv.t, yv.t); };
    inst.output = [&ctx, yv] { return download(ctx, yv.buf.t); };
    inst.check = [&ctx, yv, x, w, bias, s, wt, n2]() {
      const auto gu = ref::linear(x, w, bias, s.m, n2, s.k);
      std::vector<double> ref(size_t(s.m * s.n));
      for (int64_t i = 0; i < s.m; ++i)
        for (int64_t j = 0; j < s.n; ++j) {
          const double g = gu[size_t(i * n2 + j)], u = gu[size_t(i * n2 + s.n + j)];
          ref[size_t(i * s.n + j)] = g / (1.0 + std::exp(-g)) * u;
        }
      return check_output(ctx, yv, ref, tolerance(op_id::LINEAR_SWIGLU, wt));
    };
    inst.bytes = double(lw.weight.n_bytes()) + 4.0 * double(s.m * (s.k + s.n));
    inst.flops = 2.0 * double(s.m) * double(n2) * double(s.k);
    return inst;
  };
  return c;
}

}  // namespace

void add_linear_cases(std::vector<test_case>& out) {
  const linear_shape shapes[] = {
      {1, 1, 1, true, 0, 0, false},      {1, 7, 13, false, 3, 2, false},   {2, 9, 64, true, 0, 5, false},
      {3, 16, 180, false, 0, 0, false},  {5, 37, 129, true, 7, 1, false},  {17, 130, 257, true, 0, 0, false},
      {1, 300, 1024, false, 0, 0, false}, {64, 67, 96, true, 16, 3, false}, {4, 5, 8, false, 1, 1, false},
      // More rows than one x panel holds at this k (panels of 24-42 rows for 1-2 MiB of L2): several passes.
      {100, 37, 8192, true, 5, 0, false},
      // GEMM edges: k < 8 (tails only), one row past a 4-row tile, several row blocks (MC <= 256) with a short
      // last one, k over 2-3 KC-blocks with a tail, 1024 rows, n past 4 output blocks of 48 with a partial panel.
      {3, 11, 5, true, 2, 4, false},      {5, 25, 17, false, 0, 9, false},   {257, 50, 100, true, 0, 7, false},
      {9, 30, 5607, true, 2, 3, false},   {1024, 20, 24, false, 1, 1, false}, {6, 205, 40, true, 0, 0, false},
      {131, 61, 263, false, 4, 0, false},
      // The 9B model's decode (memory-bound: weights streamed once) and a prefill chunk (compute-bound).
      {1, 4096, 4096, false, 0, 0, true}, {1, 13696, 4096, false, 0, 0, true}, {128, 4096, 4096, false, 0, 0, true},
      // The rest of one decode step: qkv (4096 + 2 x 256 outputs), the fused gate_up, down.
      {1, 4608, 4096, false, 0, 0, true}, {1, 27392, 4096, false, 0, 0, true}, {1, 4096, 13696, false, 0, 0, true},
      // The vision tower's qkv projection over one 32x32-patch image.
      {1024, 4608, 1536, true, 0, 0, true},
      // Prefill of 512 tokens through the 9B attention and fused MLP shapes; the vision tower over a 1080x2400
      // screenshot (~13k patches): qkv, MLP up/gate (a 96-row chunk, as the encoder runs it), MLP down. (The
      // portable backend takes minutes on the large ones: --backend cpu.)
      {512, 4096, 4096, false, 0, 0, true}, {512, 27392, 4096, false, 0, 0, true},
      {13000, 4608, 1536, true, 0, 0, true}, {96, 4096, 1536, false, 0, 0, true}, {13000, 1536, 4096, false, 0, 0, true},
      // Around the row count from which LINEAR on BF16 weights takes the bf16 GEMM (kernels/cpu/gemm_bf16.h).
      {4, 4096, 4096, false, 0, 0, true}, {8, 4096, 4096, false, 0, 0, true}, {16, 4096, 4096, false, 0, 0, true},
      {32, 4096, 4096, false, 0, 0, true}, {64, 4096, 4096, false, 0, 0, true},
  };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16})
    for (const linear_shape& s : shapes) out.push_back(linear_case(t, s));
  // LINEAR_SWIGLU (n = outputs, the weight has 2n rows): GEMV row counts 1, 2, 3 and 8 (CUDA's fused gate), an odd
  // n (the last block has one column pair), k under one 16-byte piece and unaligned k, strided x and y; 9 and 64
  // rows (the GEMM then the gate); the 9B decode and a 512-row chunk.
  const linear_shape swiglu_shapes[] = {
      {1, 1, 1, true, 0, 0, false},     {1, 7, 13, false, 3, 2, false},  {2, 9, 64, true, 0, 5, false},
      {3, 16, 180, false, 0, 0, false}, {8, 33, 256, true, 1, 1, false}, {9, 20, 100, true, 2, 0, false},
      {64, 67, 96, false, 16, 3, false}, {1, 13696, 4096, false, 0, 0, true}, {512, 13696, 4096, false, 0, 0, true},
  };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16})
    for (const linear_shape& s : swiglu_shapes) out.push_back(swiglu_case(t, s));
}

}  // namespace autoglm::harness
