// tests/kernels/cases_elementwise.cpp: RMS_NORM, LAYER_NORM, ROPE_MROPE, ROPE_2D, SILU_MUL, GELU, ADD and SOFTMAX
// (F32) on 1 row, odd widths, widths that cross the element-wise split, views with a row stride (q inside a
// fused qkv, gate/up inside gate_up), in-place operands, and RoPE positions up to 10^5.
#include <cmath>

#include "harness.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {

using vecd = std::vector<double>;

vecd widen(const std::vector<float>& v) { return vecd(v.begin(), v.end()); }

test_case make_case(op_id op, std::string name, bool perf, std::function<instance(exec_context&)> make) {
  test_case c;
  c.op = op;
  c.key = dtype::F32;
  c.name = std::move(name);
  c.perf = perf;
  c.make = std::move(make);
  return c;
}

std::string dims(int64_t m, int64_t n, int64_t pad) {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + (pad ? " strided" : "");
}

void add_norm_cases(std::vector<test_case>& out) {
  struct shape { int64_t m, n, pad; bool in_place, perf; };
  for (const shape s : {shape{1, 1, 0, false, false}, shape{1, 7, 2, false, false}, shape{3, 4096, 0, true, false},
                        shape{33, 100, 5, false, false}, shape{2, 1536, 0, false, false},
                        shape{128, 4096, 0, false, true}}) {
    const std::string nm = dims(s.m, s.n, s.pad) + (s.in_place ? " in-place" : "");
    for (bool layer : {false, true}) {
      out.push_back(make_case(layer ? op_id::LAYER_NORM : op_id::RMS_NORM, nm, s.perf, [s, layer, nm](exec_context& ctx) {
        rng r(seed_of(nm + (layer ? "ln" : "rms")));
        const auto x = r.normal(size_t(s.m * s.n), 3.0f);
        const auto w = r.normal(size_t(s.n)), b = r.normal(size_t(s.n));
        padded xv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad, x);
        padded yv = s.in_place ? xv : make_padded(ctx, dtype::F32, s.m, s.n, s.pad);
        const tensor wt = upload_f(ctx, dtype::F32, {s.n}, w), bt = upload_f(ctx, dtype::F32, {s.n}, b);
        const float eps = 1e-5f;
        instance inst;
        inst.run = [&ctx, xv, yv, wt, bt, layer, eps]() mutable {
          if (layer) ops::layer_norm(ctx, xv.t, wt, bt, eps, yv.t);
          else ops::rms_norm(ctx, xv.t, wt, eps, yv.t);
        };
        inst.output = [&ctx, yv] { return download(ctx, yv.buf.t); };
        inst.check = [&ctx, yv, x, w, b, s, layer, eps] {
          const vecd ref = layer ? ref::layer_norm(x, w, b, s.m, s.n, eps) : ref::rms_norm(x, w, s.m, s.n, eps);
          return check_output(ctx, yv, ref, tolerance(op_id::RMS_NORM, dtype::F32));
        };
        inst.bytes = 8.0 * double(s.m * s.n);
        return inst;
      }));
    }
  }
}

// RESIDUAL_RMS_NORM: x += rms_norm(y) w_post, h = rms_norm(x) w_next (and without w_next), strided rows.
void add_residual_norm_cases(std::vector<test_case>& out) {
  struct shape { int64_t m, n, pad; bool next, perf; };
  // Rows of whole aligned float4s up to 16,384 wide take CUDA's register-resident kernel (1, 2 or 4 float4s per
  // thread: 4096, 8192, 13696, 16384 below), the others the block-loop kernel.
  for (const shape s : {shape{1, 1, 0, true, false}, shape{1, 7, 2, true, false}, shape{3, 4096, 0, true, false},
                        shape{33, 100, 5, false, false}, shape{2, 1536, 3, true, false}, shape{2, 8192, 0, true, false},
                        shape{1, 13696, 0, false, false}, shape{3, 16384, 4, true, false},
                        shape{2, 16388, 0, true, false}, shape{128, 4096, 0, true, true}}) {
    const std::string nm = dims(s.m, s.n, s.pad) + (s.next ? "" : " no next norm");
    out.push_back(make_case(op_id::RESIDUAL_RMS_NORM, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "residual_rms"));
      const auto x = r.normal(size_t(s.m * s.n), 2.0f), y = r.normal(size_t(s.m * s.n), 3.0f);
      const auto wp = r.normal(size_t(s.n)), wn = r.normal(size_t(s.n));
      padded xv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad, x);
      padded yv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad ? s.pad + 1 : 0, y);
      padded hv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad);
      const tensor wpt = upload_f(ctx, dtype::F32, {s.n}, wp);
      const tensor wnt = s.next ? upload_f(ctx, dtype::F32, {s.n}, wn) : tensor();
      const float eps = 1e-5f;
      instance inst;
      inst.run = [&ctx, xv, yv, hv, wpt, wnt, eps]() mutable {
        ops::residual_rms_norm(ctx, xv.t, yv.t, wpt, wnt, eps, hv.t);
      };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, hv, x, y, wp, wn, s, eps] {
        const vecd normed = ref::rms_norm(y, wp, s.m, s.n, eps);
        vecd xs(x.size());
        ref::vecf xf(x.size());
        for (size_t i = 0; i < x.size(); ++i) {
          xs[i] = double(x[i]) + normed[i];
          xf[i] = float(xs[i]);
        }
        const double tol = tolerance(op_id::RESIDUAL_RMS_NORM, dtype::F32);
        std::string out = check_output(ctx, xv, xs, tol);
        if (s.next) out += check_output(ctx, hv, ref::rms_norm(xf, wn, s.m, s.n, eps), tol);
        return out;
      };
      inst.bytes = (s.next ? 16.0 : 12.0) * double(s.m * s.n);
      return inst;
    }));
  }
}

void add_rope_cases(std::vector<test_case>& out) {
  struct mshape { int64_t n, heads, hd, rot; std::array<int32_t, 3> sections; int32_t max_pos; int64_t pad; };
  for (const mshape s : {mshape{1, 2, 8, 8, {1, 2, 1}, 10, 0}, mshape{5, 3, 16, 8, {2, 1, 1}, 5000, 7},
                         mshape{33, 4, 64, 32, {4, 6, 6}, 300, 0}, mshape{7, 2, 128, 64, {8, 12, 12}, 100000, 256}}) {
    const std::string nm = "n=" + std::to_string(s.n) + " heads=" + std::to_string(s.heads) + " hd=" +
                           std::to_string(s.hd) + " rot=" + std::to_string(s.rot) + " pos<=" + std::to_string(s.max_pos) +
                           (s.pad ? " strided" : "");
    out.push_back(make_case(op_id::ROPE_MROPE, nm, false, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "mrope"));
      const int64_t w = s.heads * s.hd;
      const auto x = r.normal(size_t(s.n * w));
      std::vector<int32_t> pos(static_cast<size_t>(3 * s.n));
      for (auto& p : pos) p = r.integer(0, s.max_pos);
      padded xv = make_padded(ctx, dtype::F32, s.n, w, s.pad, x);
      const tensor pt = upload_i32(ctx, {3, s.n}, pos);
      const float theta = 10000.0f;
      instance inst;
      inst.run = [&ctx, xv, pt, s, theta]() mutable {
        ops::rope_mrope(ctx, xv.t, int32_t(s.heads), int32_t(s.hd), int32_t(s.rot), pt, s.sections, theta);
      };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, x, pos, s, w, theta] {
        vecd ref = widen(x);
        ref::rope_mrope(ref, s.n, w, s.heads, s.hd, s.rot, pos, s.sections, theta);
        return check_output(ctx, xv, ref, tolerance(op_id::ROPE_MROPE, dtype::F32));
      };
      return inst;
    }));
  }
  struct vshape { int64_t n, heads, hd; int64_t pad; };
  for (const vshape s : {vshape{1, 1, 4, 0}, vshape{9, 2, 16, 3}, vshape{40, 3, 64, 0}, vshape{300, 2, 128, 256}}) {
    const std::string nm = "n=" + std::to_string(s.n) + " heads=" + std::to_string(s.heads) + " hd=" +
                           std::to_string(s.hd) + (s.pad ? " strided" : "");
    out.push_back(make_case(op_id::ROPE_2D, nm, false, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "rope2d"));
      const int64_t w = s.heads * s.hd;
      const auto x = r.normal(size_t(s.n * w));
      std::vector<int32_t> pos(static_cast<size_t>(2 * s.n));
      for (auto& p : pos) p = r.integer(0, 120);
      padded xv = make_padded(ctx, dtype::F32, s.n, w, s.pad, x);
      const tensor pt = upload_i32(ctx, {2, s.n}, pos);
      const float theta = 10000.0f;
      instance inst;
      inst.run = [&ctx, xv, pt, s, theta]() mutable { ops::rope_2d(ctx, xv.t, int32_t(s.heads), int32_t(s.hd), pt, theta); };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, x, pos, s, w, theta] {
        vecd ref = widen(x);
        ref::rope_2d(ref, s.n, w, s.heads, s.hd, pos, theta);
        return check_output(ctx, xv, ref, tolerance(op_id::ROPE_2D, dtype::F32));
      };
      return inst;
    }));
  }
}

struct ew_shape { int64_t m, n, pad; bool perf; };
const ew_shape ew_shapes[] = {{1, 1, 0, false},  {1, 13, 2, false},    {7, 33, 0, false},
                              {2, 40000, 0, false}, {3, 20000, 5, false}, {128, 13696, 0, true}};

void add_activation_cases(std::vector<test_case>& out) {
  for (const ew_shape s : ew_shapes) {
    const std::string nm = dims(s.m, s.n, s.pad);
    // gate and up as the two halves of one fused gate_up buffer [m, 2n] (the text MLP) when strided.
    out.push_back(make_case(op_id::SILU_MUL, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "silu"));
      const auto gu = r.normal(size_t(s.m * 2 * s.n), 3.0f);
      padded fused = make_padded(ctx, dtype::F32, s.m, 2 * s.n, s.pad, gu);
      tensor gate = fused.t.cols_view(0, s.n), up = fused.t.cols_view(s.n, s.n);
      padded ov = make_padded(ctx, dtype::F32, s.m, s.n, s.pad);
      instance inst;
      inst.run = [&ctx, gate, up, ov]() mutable { ops::silu_mul(ctx, gate, up, ov.t); };
      inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
      inst.check = [&ctx, ov, gu, s] {
        vecd ref(size_t(s.m * s.n));
        for (int64_t i = 0; i < s.m; ++i)
          for (int64_t j = 0; j < s.n; ++j)
            ref[size_t(i * s.n + j)] = ref::silu(gu[size_t(i * 2 * s.n + j)]) * gu[size_t(i * 2 * s.n + s.n + j)];
        return check_output(ctx, ov, ref, tolerance(op_id::SILU_MUL, dtype::F32));
      };
      inst.bytes = 12.0 * double(s.m * s.n);
      return inst;
    }));
    out.push_back(make_case(op_id::GELU, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "gelu"));
      const auto x = r.normal(size_t(s.m * s.n), 3.0f);
      padded xv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad, x);
      instance inst;
      inst.run = [&ctx, xv]() mutable { ops::gelu(ctx, xv.t); };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, x] {
        vecd ref(x.size());
        for (size_t i = 0; i < x.size(); ++i) ref[i] = ref::gelu_erf(x[i]);
        return check_output(ctx, xv, ref, tolerance(op_id::GELU, dtype::F32));
      };
      inst.bytes = 8.0 * double(s.m * s.n);
      return inst;
    }));
    out.push_back(make_case(op_id::ADD, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "add"));
      const auto x = r.normal(size_t(s.m * s.n)), y = r.normal(size_t(s.m * s.n));
      padded xv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad, x);
      padded yv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad ? s.pad + 1 : 0, y);
      instance inst;
      inst.run = [&ctx, xv, yv]() mutable { ops::add(ctx, xv.t, yv.t); };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, x, y] {
        vecd ref(x.size());
        for (size_t i = 0; i < x.size(); ++i) ref[i] = double(x[i]) + y[i];
        return check_output(ctx, xv, ref, tolerance(op_id::ADD, dtype::F32));
      };
      inst.bytes = 12.0 * double(s.m * s.n);
      return inst;
    }));
    out.push_back(make_case(op_id::SOFTMAX, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "softmax"));
      const auto x = r.normal(size_t(s.m * s.n), 4.0f);
      padded xv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad, x);
      const float scale = 0.7f;
      instance inst;
      inst.run = [&ctx, xv, scale]() mutable { ops::softmax(ctx, xv.t, scale); };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, x, s, scale] {
        return check_output(ctx, xv, ref::softmax(x, s.m, s.n, scale), tolerance(op_id::SOFTMAX, dtype::F32));
      };
      inst.bytes = 8.0 * double(s.m * s.n);
      return inst;
    }));
  }
}

}  // namespace

void add_elementwise_cases(std::vector<test_case>& out) {
  add_norm_cases(out);
  add_residual_norm_cases(out);
  add_rope_cases(out);
  add_activation_cases(out);
}

}  // namespace autoglm::harness
