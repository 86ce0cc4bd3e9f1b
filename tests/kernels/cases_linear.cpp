// tests/kernels/cases_linear.cpp: LINEAR (and LINEAR_SWIGLU, the gate|up projection with its gate, LINEAR_ADD, a
// projection added into the residual stream, and LINEAR_ROPE_KV_STORE, a stacked q|k|v projection with its rotation
// and KV store) for F32/F16/BF16 weights: decode (1-2 rows) and prefill shapes, sizes
// that are not multiples of any register tile (3/4 x rows, 4/12 W rows), of the 8-lane vectors or of the GEMM's
// blocks (k under 8, k over several KC-blocks, m over several row blocks up to 1024, n over several output
// blocks), x and y as views with a row stride (y a column range of a wider buffer, like q inside qkv), with and
// without bias; --perf adds the 9B model's decode and prefill shapes and the vision tower's.
#include <algorithm>
#include <array>
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

// add: LINEAR_ADD instead, y [m, n] += x . W^T (+ bias) with y starting at random values (the residual stream it
// adds into).
test_case linear_case(dtype wt, const linear_shape& s, bool add = false) {
  const op_id op = add ? op_id::LINEAR_ADD : op_id::LINEAR;
  test_case c = case_for(op, wt, s);
  c.make = [wt, s, add, op, name = c.name](exec_context& ctx) {
    rng r(seed_of((add ? "linear_add" : "linear") + name + dtype_name(wt)));
    const std::vector<float> x = r.normal(size_t(s.m * s.k));
    const std::vector<float> w = decode(wt, encode(wt, r.normal(size_t(s.n * s.k), 1.0f / std::sqrt(float(s.k)))));
    const std::vector<float> bias = s.bias ? r.normal(size_t(s.n)) : std::vector<float>{};
    const std::vector<float> y0 = add ? r.normal(size_t(s.m * s.n)) : std::vector<float>{};
    padded xv = make_padded(ctx, dtype::F32, s.m, s.k, s.x_pad, x);
    padded yv = make_padded(ctx, dtype::F32, s.m, s.n, s.y_pad, y0);
    padded tv = make_padded(ctx, dtype::F32, add ? s.m : 1, add ? s.n : 1, 0);  // LINEAR_ADD's tmp
    linear_weight lw;
    lw.weight = upload_f(ctx, wt, {s.n, s.k}, w);
    if (s.bias) lw.bias = upload_f(ctx, dtype::F32, {s.n}, bias);
    lw.name = "harness.linear";
    instance inst;
    inst.run = [&ctx, xv, yv, tv, lw, add]() mutable {
      if (add) ops::linear_add(ctx, xv.t, lw, tv.t, yv.t);
      else ops::linear(ctx, xv.t, lw, yv.t);
    };
    inst.output = [&ctx, yv] { return download(ctx, yv.buf.t); };
    // Keyed by the weight's type: CUDA's tensor-core GEMM rounds x to F16/BF16 (harness.cpp's tolerance()).
    inst.check = [&ctx, yv, x, w, bias, y0, s, wt, op]() {
      std::vector<double> ref = ref::linear(x, w, bias, s.m, s.n, s.k);
      for (size_t i = 0; i < y0.size(); ++i) ref[i] += double(y0[i]);
      return check_output(ctx, yv, ref, tolerance(op, wt));
    };
    inst.bytes = double(lw.weight.n_bytes()) + 4.0 * double(s.m * (s.k + (add ? 2 : 1) * s.n));
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

// LINEAR_ROPE_KV_STORE: y [m, (q + 2 kv) heads x hd] = x . W^T (+ bias), then the M-RoPE of its q and k heads and the
// store of its k and v heads into a paged cache of type `cache`. y against the double reference (the projection, then
// the rotation); the cache bit for bit against the rounding of what the op left in y's k and v columns (as
// ROPE_KV_STORE's case), every other slot untouched.
struct rope_store_shape {
  int64_t m, k, q_heads, kv_heads, hd, rot;
  std::array<int32_t, 3> sections;
  int64_t n_blocks, block;
  bool bias;
  int64_t pad;
  bool perf;
};

test_case rope_store_case(dtype wt, dtype cache, const rope_store_shape& s) {
  test_case c;
  c.op = op_id::LINEAR_ROPE_KV_STORE;
  c.key = wt;
  c.perf = s.perf;
  c.stream = s.perf;
  c.name = "m=" + std::to_string(s.m) + " k=" + std::to_string(s.k) + " heads=" + std::to_string(s.q_heads) + "/" +
           std::to_string(s.kv_heads) + " hd=" + std::to_string(s.hd) + " rot=" + std::to_string(s.rot) + " cache=" +
           dtype_name(cache) + (s.bias ? " bias" : "") + (s.pad ? " strided" : "");
  c.make = [wt, cache, s, name = c.name](exec_context& ctx) {
    rng r(seed_of("linear_rope_kv_store" + name + dtype_name(wt)));
    const int64_t kw = s.kv_heads * s.hd, qkw = s.q_heads * s.hd + kw, n = qkw + kw;
    const std::vector<float> x = r.normal(size_t(s.m * s.k));
    const std::vector<float> w = decode(wt, encode(wt, r.normal(size_t(n * s.k), 1.0f / std::sqrt(float(s.k)))));
    const std::vector<float> bias = s.bias ? r.normal(size_t(n)) : std::vector<float>{};
    const int64_t capacity = s.n_blocks * s.block;
    std::vector<int32_t> all(static_cast<size_t>(capacity));
    for (size_t i = 0; i < all.size(); ++i) all[i] = int32_t(i);
    std::shuffle(all.begin(), all.end(), r.gen);
    std::vector<int32_t> slots(all.begin(), all.begin() + s.m);
    for (size_t i = 4; i < slots.size(); i += 5) slots[i] = -1;  // padding rows: rotated, not stored
    std::vector<int32_t> pos(static_cast<size_t>(3 * s.m));
    for (auto& p : pos) p = r.integer(0, 70000);
    padded xv = make_padded(ctx, dtype::F32, s.m, s.k, s.pad, x);
    padded yv = make_padded(ctx, dtype::F32, s.m, n, s.pad);
    linear_weight lw;
    lw.weight = upload_f(ctx, wt, {n, s.k}, w);
    if (s.bias) lw.bias = upload_f(ctx, dtype::F32, {n}, bias);
    lw.name = "harness.qkv";
    const std::vector<float> fill = std::vector<float>(size_t(capacity * kw), k_sentinel);
    paged_kv_layer kv;
    kv.k = upload_f(ctx, cache, {s.n_blocks, s.block, s.kv_heads, s.hd}, fill);
    kv.v = upload_f(ctx, cache, {s.n_blocks, s.block, s.kv_heads, s.hd}, fill);
    const tensor pt = upload_i32(ctx, {3, s.m}, pos), st = upload_i32(ctx, {s.m}, slots);
    instance inst;
    inst.run = [&ctx, xv, yv, lw, pt, st, kv, s]() mutable {
      ops::linear_rope_kv_store(ctx, xv.t, lw, yv.t, int32_t(s.q_heads), int32_t(s.rot), pt, s.sections, 10000.0f,
                                kv, st);
    };
    inst.output = [&ctx, yv, kv] {
      std::vector<uint8_t> b = download(ctx, yv.buf.t), k = download(ctx, kv.k), v = download(ctx, kv.v);
      b.insert(b.end(), k.begin(), k.end());
      b.insert(b.end(), v.begin(), v.end());
      return b;
    };
    inst.check = [&ctx, yv, kv, x, w, bias, s, wt, cache, n, kw, qkw, slots, pos, fill]() {
      ref::vecd ref = ref::linear(x, w, bias, s.m, n, s.k);
      ref::rope_mrope(ref, s.m, n, s.q_heads + s.kv_heads, s.hd, s.rot, pos, s.sections, 10000.0f);
      // The projection's tolerance (CUDA's tensor-core GEMM rounds x for more than a decode step's rows).
      std::string problems = check_output(ctx, yv, ref, tolerance(op_id::LINEAR, wt));
      const std::vector<float> got_y = read_padded(ctx, yv, problems);
      for (int which = 0; which < 2; ++which) {
        const std::vector<float> got = decode(cache, download(ctx, which ? kv.v : kv.k));
        ref::vecd cache_ref(fill.begin(), fill.end());
        for (int64_t i = 0; i < s.m; ++i) {
          if (slots[size_t(i)] < 0) continue;
          const float* row = got_y.data() + i * n + (which ? qkw : qkw - kw);  // rotated k, or v
          for (int64_t j = 0; j < kw; ++j) cache_ref[size_t(slots[size_t(i)] * kw + j)] = ref::round_to(cache, row[j]);
        }
        problems += verdict(which ? "v cache" : "k cache", compare(got, cache_ref), 0.0);
      }
      return problems;
    };
    inst.bytes = double(lw.weight.n_bytes()) + 4.0 * double(s.m * (s.k + n)) +
                 2.0 * double(s.m * kw) * double(dtype_size(cache));
    inst.flops = 2.0 * double(s.m) * double(n) * double(s.k);
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
  // LINEAR_ADD: decode rows (CUDA: the GEMV into tmp, then ADD), 9 and 64 rows without bias (CUDA: cuBLAS adding
  // into y) and with it (the product into tmp), strided x and y; --perf: the vision tower's projection and MLP down
  // over a 1080x2400 screenshot.
  const linear_shape add_shapes[] = {
      {1, 7, 13, true, 0, 0, false},    {3, 16, 180, false, 2, 1, false},  {9, 20, 100, false, 2, 3, false},
      {9, 20, 100, true, 0, 0, false},  {64, 67, 96, false, 16, 3, false}, {130, 48, 256, false, 0, 0, false},
      {13000, 1536, 1536, false, 0, 0, true}, {13000, 1536, 4096, false, 0, 0, true},
  };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16})
    for (const linear_shape& s : add_shapes) out.push_back(linear_case(t, s, true));
  // LINEAR_ROPE_KV_STORE: decode rows 1, 3 and 8 (CUDA's fused GEMV; a padding slot at row 4), GLM's head layout
  // (32 / 2 heads of 128, 64 rotated dims, sections 8/12/12), one KV head per 3 query heads, head_dim 8 with
  // everything rotated, a head_dim that is not a multiple of 4 and 9 rows (LINEAR then ROPE_KV_STORE), strided x and
  // y, with and without bias; the 9B decode step's qkv for --perf.
  const rope_store_shape rope_store_shapes[] = {
      {1, 13, 4, 2, 8, 8, {1, 2, 1}, 6, 16, true, 0, false},
      {3, 64, 3, 1, 32, 16, {2, 3, 3}, 4, 3, false, 3, false},
      {8, 40, 6, 2, 32, 16, {2, 3, 3}, 4, 5, true, 2, false},
      {1, 256, 32, 2, 128, 64, {8, 12, 12}, 8, 16, true, 0, false},
      {2, 33, 4, 2, 6, 4, {1, 1, 0}, 3, 4, true, 1, false},
      {9, 100, 16, 1, 64, 32, {4, 6, 6}, 3, 16, true, 0, false},
      {1, 4096, 32, 2, 128, 64, {8, 12, 12}, 64, 16, true, 0, true},
  };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16})
    for (dtype cache : {dtype::F32, dtype::F16, dtype::BF16})
      for (const rope_store_shape& s : rope_store_shapes)
        if (!s.perf || (t == dtype::BF16 && cache == dtype::BF16)) out.push_back(rope_store_case(t, cache, s));
}

}  // namespace autoglm::harness
