// tests/kernels/cases_cross.cpp: the ops an encoder-decoder and gated cross-attention layers add (F32):
//  - ATTENTION_CROSS: 1 query row (decode) to 40 rows over 1 to 1500 keys (Whisper's 30 s of encoder states),
//    MHA and GQA, head dims off the 32-lane width and above 128, q/k/v as column views of fused buffers, no keys
//    at all (zeros);
//  - IM2COL_1D: Whisper's kernel-3 / padding-1 taps at strides 1 and 2 on odd and even lengths, a wider kernel,
//    a single step; exact, and then through LINEAR against PyTorch's Conv1d definition (the weight layout
//    [c_out, c_in, k] read as [c_out, c_in*k]);
//  - ADD_SCALED: the gated residual x += tanh(g) * y on the element-wise shapes.
#include <cmath>

#include "harness.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {

using vecd = std::vector<double>;

test_case make_case(op_id op, std::string name, bool perf, std::function<instance(exec_context&)> make) {
  test_case c;
  c.op = op;
  c.key = dtype::F32;
  c.name = std::move(name);
  c.perf = perf;
  c.make = std::move(make);
  return c;
}

void add_cross_attention_cases(std::vector<test_case>& out) {
  struct shape { int64_t nq, nk, heads, kv_heads, hd; bool perf; };
  for (const shape s : {shape{1, 1, 1, 1, 16, false}, shape{1, 1500, 6, 6, 64, false}, shape{7, 33, 4, 2, 24, false},
                        shape{40, 100, 3, 3, 80, false}, shape{3, 77, 8, 2, 128, false}, shape{2, 50, 2, 2, 200, false},
                        shape{5, 0, 2, 1, 8, false}, shape{1, 1500, 20, 20, 64, true},
                        shape{224, 1500, 20, 20, 64, true}}) {
    const std::string nm = "nq=" + std::to_string(s.nq) + " nk=" + std::to_string(s.nk) + " heads=" +
                           std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) + " hd=" + std::to_string(s.hd);
    out.push_back(make_case(op_id::ATTENTION_CROSS, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "cross"));
      const int64_t qw = s.heads * s.hd, kw = s.kv_heads * s.hd;
      // q inside a fused [nq, q | something] buffer, k and v as the halves of one [nk, k | v] projection.
      const auto qx = r.normal(size_t(s.nq * (qw + 5)));
      const auto kv = r.normal(size_t(s.nk * 2 * kw));
      padded qf = make_padded(ctx, dtype::F32, s.nq, qw + 5, 0, qx);
      padded kvf = make_padded(ctx, dtype::F32, s.nk, 2 * kw, 3, kv);
      tensor q = qf.t.cols_view(0, qw), k = kvf.t.cols_view(0, kw), v = kvf.t.cols_view(kw, kw);
      padded ov = make_padded(ctx, dtype::F32, s.nq, qw, 2);
      const float scale = 1.0f / std::sqrt(float(s.hd));
      instance inst;
      inst.run = [&ctx, q, k, v, ov, s, scale]() mutable {
        ops::attention_cross(ctx, q, k, v, int32_t(s.heads), int32_t(s.kv_heads), int32_t(s.hd), scale, ov.t);
      };
      inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
      inst.check = [&ctx, ov, qx, kv, s, qw, kw, scale] {
        std::vector<float> qh(static_cast<size_t>(s.nq * qw)), kh(static_cast<size_t>(s.nk * kw)), vh = kh;
        for (int64_t i = 0; i < s.nq; ++i) std::copy_n(qx.begin() + i * (qw + 5), qw, qh.begin() + i * qw);
        for (int64_t j = 0; j < s.nk; ++j) {
          std::copy_n(kv.begin() + j * 2 * kw, kw, kh.begin() + j * kw);
          std::copy_n(kv.begin() + j * 2 * kw + kw, kw, vh.begin() + j * kw);
        }
        const vecd ref = ref::attention_cross(qh, kh, vh, s.nq, s.nk, s.heads, s.kv_heads, s.hd, scale);
        return check_output(ctx, ov, ref, tolerance(op_id::ATTENTION_CROSS, dtype::F32));
      };
      inst.flops = 4.0 * double(s.nq) * double(s.nk) * double(qw);
      inst.bytes = 8.0 * double(s.nk) * double(kw);
      return inst;
    }));
  }
}

void add_im2col_cases(std::vector<test_case>& out) {
  struct shape { int64_t t_in, c; int32_t ks, stride, pad; int64_t c_out; bool perf; };
  for (const shape s : {shape{1, 1, 3, 1, 1, 2, false}, shape{1, 3, 3, 2, 1, 4, false}, shape{7, 5, 3, 2, 1, 6, false},
                        shape{8, 5, 3, 2, 1, 6, false}, shape{30, 13, 3, 1, 1, 9, false},
                        shape{11, 4, 5, 3, 2, 3, false}, shape{300, 80, 3, 1, 1, 64, false},
                        shape{3000, 80, 3, 1, 1, 384, true}, shape{3000, 384, 3, 2, 1, 384, true}}) {
    const std::string nm = "t_in=" + std::to_string(s.t_in) + " c=" + std::to_string(s.c) + " k=" +
                           std::to_string(s.ks) + " stride=" + std::to_string(s.stride) + " pad=" + std::to_string(s.pad);
    const int64_t t_out = ops::conv1d_out_len(s.t_in, s.ks, s.stride, s.pad);
    // The gather alone: exact.
    out.push_back(make_case(op_id::IM2COL_1D, nm, s.perf, [s, nm, t_out](exec_context& ctx) {
      rng r(seed_of(nm + "im2col"));
      const auto x = r.normal(size_t(s.t_in * s.c));
      padded xv = make_padded(ctx, dtype::F32, s.t_in, s.c, 2, x);
      padded ov = make_padded(ctx, dtype::F32, t_out, s.c * s.ks, 1);
      instance inst;
      inst.run = [&ctx, xv, ov, s]() mutable { ops::im2col_1d(ctx, xv.t, s.ks, s.stride, s.pad, ov.t); };
      inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
      inst.check = [&ctx, ov, x, s, t_out] {
        vecd ref(size_t(t_out * s.c * s.ks));
        for (int64_t t = 0; t < t_out; ++t)
          for (int64_t ci = 0; ci < s.c; ++ci)
            for (int64_t j = 0; j < s.ks; ++j) {
              const int64_t src = t * s.stride + j - s.pad;
              ref[size_t((t * s.c + ci) * s.ks + j)] = src >= 0 && src < s.t_in ? x[size_t(src * s.c + ci)] : 0.0;
            }
        return check_output(ctx, ov, ref, tolerance(op_id::IM2COL_1D, dtype::F32));
      };
      inst.bytes = 8.0 * double(t_out * s.c * s.ks);
      return inst;
    }));
    if (s.perf) continue;
    // The convolution it serves: taps, then LINEAR with the Conv1d weight [c_out, c_in, k] as [c_out, c_in*k] + bias.
    out.push_back(make_case(op_id::IM2COL_1D, nm + " as conv1d", false, [s, nm, t_out](exec_context& ctx) {
      rng r(seed_of(nm + "conv1d"));
      const auto x = r.normal(size_t(s.t_in * s.c));
      const auto w = r.normal(size_t(s.c_out * s.c * s.ks)), b = r.normal(size_t(s.c_out));
      padded xv = make_padded(ctx, dtype::F32, s.t_in, s.c, 0, x);
      tensor cols = ops::alloc_persistent(ctx, dtype::F32, {t_out, s.c * s.ks});
      linear_weight lw;
      lw.weight = upload_f(ctx, dtype::F32, {s.c_out, s.c * s.ks}, w);
      lw.bias = upload_f(ctx, dtype::F32, {s.c_out}, b);
      lw.name = "conv";
      padded ov = make_padded(ctx, dtype::F32, t_out, s.c_out, 0);
      instance inst;
      inst.run = [&ctx, xv, cols, lw, ov, s]() mutable {
        ops::im2col_1d(ctx, xv.t, s.ks, s.stride, s.pad, cols);
        ops::linear(ctx, cols, lw, ov.t);
      };
      inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
      inst.check = [&ctx, ov, x, w, b, s] {
        const vecd ref = ref::conv1d(x, w, b, s.t_in, s.c, s.c_out, s.ks, s.stride, s.pad);
        return check_output(ctx, ov, ref, tolerance(op_id::LINEAR, dtype::F32));
      };
      return inst;
    }));
  }
}

void add_add_scaled_cases(std::vector<test_case>& out) {
  struct shape { int64_t m, n, pad; float alpha; bool perf; };
  for (const shape s : {shape{1, 1, 0, 0.5f, false}, shape{1, 13, 2, -0.8f, false}, shape{7, 33, 0, 0.0f, false},
                        shape{2, 40000, 0, 0.3553f, false}, shape{3, 20000, 5, -1.0f, false},
                        shape{128, 4096, 0, 0.75f, true}}) {
    const std::string nm = "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + (s.pad ? " strided" : "") +
                           " alpha=" + std::to_string(s.alpha);
    out.push_back(make_case(op_id::ADD_SCALED, nm, s.perf, [s, nm](exec_context& ctx) {
      rng r(seed_of(nm + "add_scaled"));
      const auto x = r.normal(size_t(s.m * s.n)), y = r.normal(size_t(s.m * s.n));
      padded xv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad, x);
      padded yv = make_padded(ctx, dtype::F32, s.m, s.n, s.pad ? s.pad + 1 : 0, y);
      instance inst;
      inst.run = [&ctx, xv, yv, s]() mutable { ops::add_scaled(ctx, xv.t, yv.t, s.alpha); };
      inst.output = [&ctx, xv] { return download(ctx, xv.buf.t); };
      inst.check = [&ctx, xv, x, y, s] {
        vecd ref(x.size());
        for (size_t i = 0; i < x.size(); ++i) ref[i] = double(x[i]) + double(s.alpha) * y[i];
        return check_output(ctx, xv, ref, tolerance(op_id::ADD_SCALED, dtype::F32));
      };
      inst.bytes = 12.0 * double(s.m * s.n);
      return inst;
    }));
  }
}

}  // namespace

void add_cross_cases(std::vector<test_case>& out) {
  add_cross_attention_cases(out);
  add_im2col_cases(out);
  add_add_scaled_cases(out);
}

}  // namespace autoglm::harness
