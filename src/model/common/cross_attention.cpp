// model/common/cross_attention.cpp: the cross-attention residual block over ops (see cross_attention.h).
#include "model/common/cross_attention.h"

#include <cmath>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm::layers {

namespace {

// Per-head RMSNorm in place on a contiguous [n, heads*head_dim] tensor: its rows viewed as [n*heads, head_dim].
void head_rms_norm(exec_context& ctx, tensor& x, const tensor& weight, int32_t heads, int32_t head_dim, float eps) {
  if (weight.empty()) return;
  AG_CHECK(x.is_contiguous() && x.cols() == int64_t(heads) * head_dim, "head_rms_norm: x must be contiguous heads");
  tensor rows = x.reshape({x.rows() * heads, int64_t(head_dim)});
  ops::rms_norm(ctx, rows, weight, eps, rows);
}

void pre_norm(exec_context& ctx, const cross_attention_weights& w, const tensor& x, tensor& h) {
  if (w.norm_b.empty()) ops::rms_norm(ctx, x, w.norm_w, w.norm_eps, h);
  else ops::layer_norm(ctx, x, w.norm_w, w.norm_b, w.norm_eps, h);
}

}  // namespace

cross_kv cross_attention_kv(exec_context& ctx, const cross_attention_weights& w, const tensor& media) {
  const int64_t n = media.rows(), kvd = int64_t(w.n_kv_heads) * w.head_dim;
  cross_kv kv;
  kv.k = ops::alloc_persistent(ctx, dtype::F32, {n, kvd});
  kv.v = ops::alloc_persistent(ctx, dtype::F32, {n, kvd});
  ops::linear(ctx, media, w.k_proj, kv.k);
  ops::linear(ctx, media, w.v_proj, kv.v);
  head_rms_norm(ctx, kv.k, w.k_norm, w.n_kv_heads, w.head_dim, w.qk_norm_eps);
  return kv;
}

void cross_attention_residual(exec_context& ctx, const cross_attention_weights& w, const cross_kv& kv, tensor& x) {
  const int64_t n = x.rows(), H = x.cols(), qd = int64_t(w.n_heads) * w.head_dim;
  tensor h = ops::scratch(ctx, dtype::F32, {n, H});
  tensor q = ops::scratch(ctx, dtype::F32, {n, qd});
  tensor attn = ops::scratch(ctx, dtype::F32, {n, qd});
  pre_norm(ctx, w, x, h);
  ops::linear(ctx, h, w.q_proj, q);
  head_rms_norm(ctx, q, w.q_norm, w.n_heads, w.head_dim, w.qk_norm_eps);
  ops::attention_cross(ctx, q, kv.k, kv.v, w.n_heads, w.n_kv_heads, w.head_dim, 1.0f / std::sqrt(float(w.head_dim)),
                       attn);
  ops::linear(ctx, attn, w.o_proj, h);
  if (w.gate == 1.0f) ops::add(ctx, x, h);
  else ops::add_scaled(ctx, x, h, w.gate);
}

}  // namespace autoglm::layers
