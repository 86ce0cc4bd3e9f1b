// model/glm4v/vision.cpp: the GLM-4.1V vision tower forward pass on the CPU (see vision.h), including the
// grid_sample-compatible bicubic position interpolation. The per-frame attention is in vision_attention.cpp.
#include "model/glm4v/vision.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/safetensors.h"
#include "kernels/cpu/activations.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "model/glm4v/vision_attention.h"

namespace autoglm::glm4v {

namespace {

const std::string prefix = "model.visual.";

// Rows of activations per cpu::linear call. cpu::linear walks all x rows for every 4-row weight tile, so a
// bounded row chunk keeps x in cache (96 x 1536 fp32 = 590 KB) while each weight is streamed n/96 times.
constexpr int64_t row_chunk = 96;
// nn.LayerNorm(dim) default, used by merger.post_projection_norm (HF does not pass the config eps).
constexpr float merger_ln_eps = 1e-5f;

bool is_float_type(dtype t) { return t == dtype::F32 || t == dtype::F16 || t == dtype::BF16; }

const tensor_ref& get_tensor(const tensor_store& store, const std::string& name, const std::vector<int64_t>& shape) {
  const tensor_ref& t = store.get(prefix + name, shape);
  if (!is_float_type(t.type))
    throw error("tensor '" + prefix + name + "' in " + t.file + " has dtype " + dtype_name(t.type) +
                "; the vision tower needs F32, F16 or BF16");
  return t;
}

std::vector<float> load_vector(const tensor_store& store, const std::string& name, int64_t n) {
  const tensor_ref& t = get_tensor(store, name, {n});
  std::vector<float> v(static_cast<size_t>(n));
  cpu::convert_to_f32(t.type, t.data, v.data(), n);
  return v;
}

// A weight of any rank viewed as [rows, cols] (conv kernels flatten their input dims in memory order).
weight_view load_matrix(const tensor_store& store, const std::string& name, const std::vector<int64_t>& shape) {
  const tensor_ref& t = get_tensor(store, name, shape);
  int64_t cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
  return weight_view{t.type, t.data, shape[0], cols};
}

// y[m, w.rows] (row stride ys) = x[m, w.cols] · Wᵀ + b, in row chunks.
void linear_rows(const float* x, int64_t m, const weight_view& w, const float* bias, float* y, int64_t ys = 0) {
  if (!ys) ys = w.rows;
  for (int64_t r0 = 0; r0 < m; r0 += row_chunk) {
    const int64_t r = std::min(row_chunk, m - r0);
    cpu::linear(x + r0 * w.cols, r, w, bias, y + r0 * ys, ys);
  }
}

// PyTorch's cubic convolution kernels (A = -0.75) as used by grid_sample bicubic.
inline float cubic1(float x, float a) { return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f; }
inline float cubic2(float x, float a) { return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a; }

}  // namespace

void vision_patch_positions(int32_t grid_h, int32_t grid_w, int32_t merge, std::vector<int32_t>& pos_h,
                            std::vector<int32_t>& pos_w) {
  AG_CHECK(merge > 0 && grid_h % merge == 0 && grid_w % merge == 0, "vision_patch_positions: grid not divisible");
  pos_h.clear();
  pos_w.clear();
  pos_h.reserve(size_t(grid_h) * size_t(grid_w));
  pos_w.reserve(size_t(grid_h) * size_t(grid_w));
  for (int32_t hb = 0; hb < grid_h / merge; ++hb)
    for (int32_t wb = 0; wb < grid_w / merge; ++wb)
      for (int32_t hm = 0; hm < merge; ++hm)
        for (int32_t wm = 0; wm < merge; ++wm) {
          pos_h.push_back(hb * merge + hm);
          pos_w.push_back(wb * merge + wm);
        }
}

void interpolate_pos_embed(const float* table, int32_t table_grid, int32_t dim, int32_t grid_h, int32_t grid_w,
                           const int32_t* pos_h, const int32_t* pos_w, int64_t n, float* out) {
  const float a = -0.75f;
  const int32_t g = table_grid;
  default_thread_pool().parallel_for(n, 16, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      // Normalized grid coordinate exactly as HF computes it (fp32), then grid_sample's unnormalize for
      // align_corners=False.
      const float gx = ((float(pos_w[p]) + 0.5f) / float(grid_w)) * 2.0f - 1.0f;
      const float gy = ((float(pos_h[p]) + 0.5f) / float(grid_h)) * 2.0f - 1.0f;
      const float ix = ((gx + 1.0f) * float(g) - 1.0f) / 2.0f;
      const float iy = ((gy + 1.0f) * float(g) - 1.0f) / 2.0f;
      const float fx = std::floor(ix), fy = std::floor(iy);
      const float tx = ix - fx, ty = iy - fy;
      const float wx[4] = {cubic2(tx + 1.0f, a), cubic1(tx, a), cubic1(1.0f - tx, a), cubic2(2.0f - tx, a)};
      const float wy[4] = {cubic2(ty + 1.0f, a), cubic1(ty, a), cubic1(1.0f - ty, a), cubic2(2.0f - ty, a)};
      // Border padding: every tap index is clamped into the table.
      int32_t cx[4], cy[4];
      for (int k = 0; k < 4; ++k) {
        cx[k] = std::clamp(int32_t(fx) - 1 + k, 0, g - 1);
        cy[k] = std::clamp(int32_t(fy) - 1 + k, 0, g - 1);
      }
      float* o = out + p * dim;
      for (int32_t c = 0; c < dim; ++c) {
        float rows[4];
        for (int k = 0; k < 4; ++k) {
          const float* r = table + int64_t(cy[k]) * g * dim;
          rows[k] = r[int64_t(cx[0]) * dim + c] * wx[0] + r[int64_t(cx[1]) * dim + c] * wx[1] +
                    r[int64_t(cx[2]) * dim + c] * wx[2] + r[int64_t(cx[3]) * dim + c] * wx[3];
        }
        o[c] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
      }
    }
  });
}

vision_tower::vision_tower(const config& cfg, const tensor_store& store) : cfg_(cfg.vision) {
  if (!cfg_.present) throw error("config has no vision_config: this model cannot encode images");
  const int64_t d = cfg_.hidden_size, o = cfg_.out_hidden_size, f = cfg_.intermediate_size;
  const int64_t mm = int64_t(cfg_.spatial_merge_size) * cfg_.spatial_merge_size;
  const int64_t g = cfg_.pos_grid();
  patch_embed_ = load_matrix(store, "patch_embed.proj.weight",
                             {d, cfg_.in_channels, cfg_.temporal_patch_size, cfg_.patch_size, cfg_.patch_size});
  patch_embed_bias_ = load_vector(store, "patch_embed.proj.bias", d);
  post_conv_norm_ = load_vector(store, "post_conv_layernorm.weight", d);
  {
    const tensor_ref& t = get_tensor(store, "embeddings.position_embedding.weight", {g * g, d});
    pos_table_.resize(size_t(g * g * d));
    cpu::convert_to_f32(t.type, t.data, pos_table_.data(), g * g * d);
  }
  blocks_.resize(size_t(cfg_.depth));
  for (int32_t i = 0; i < cfg_.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    block_weights& b = blocks_[size_t(i)];
    b.norm1 = load_vector(store, p + "norm1.weight", d);
    b.norm2 = load_vector(store, p + "norm2.weight", d);
    b.qkv = load_matrix(store, p + "attn.qkv.weight", {3 * d, d});
    if (cfg_.attention_bias) b.qkv_bias = load_vector(store, p + "attn.qkv.bias", 3 * d);
    b.proj = load_matrix(store, p + "attn.proj.weight", {d, d});
    b.gate = load_matrix(store, p + "mlp.gate_proj.weight", {o, d});
    b.up = load_matrix(store, p + "mlp.up_proj.weight", {o, d});
    b.down = load_matrix(store, p + "mlp.down_proj.weight", {d, o});
  }
  post_norm_ = load_vector(store, "post_layernorm.weight", d);
  downsample_ = load_matrix(store, "downsample.weight", {o, d, cfg_.spatial_merge_size, cfg_.spatial_merge_size});
  AG_CHECK(downsample_.cols == d * mm, "downsample view");
  downsample_bias_ = load_vector(store, "downsample.bias", o);
  merger_proj_ = load_matrix(store, "merger.proj.weight", {o, o});
  merger_norm_w_ = load_vector(store, "merger.post_projection_norm.weight", o);
  merger_norm_b_ = load_vector(store, "merger.post_projection_norm.bias", o);
  merger_gate_ = load_matrix(store, "merger.gate_proj.weight", {f, o});
  merger_up_ = load_matrix(store, "merger.up_proj.weight", {f, o});
  merger_down_ = load_matrix(store, "merger.down_proj.weight", {o, f});
}

void vision_tower::dump(const std::string& name, const float* data, int64_t rows, int64_t cols) const {
  if (dump_) dump_(name, data, rows, cols);
}

void vision_tower::run_block(const block_weights& b, float* x, int64_t n, int64_t frame_len, const int32_t* pos_h,
                             const int32_t* pos_w) const {
  const int64_t d = cfg_.hidden_size, o = cfg_.out_hidden_size;
  const float eps = cfg_.rms_norm_eps;
  // Attention half: h = norm1(x) [n, d]; qkv [n, 3d]; RoPE on q and k; attention per frame into h; x += proj(h).
  std::vector<float> h(static_cast<size_t>(n * d));
  cpu::rms_norm(x, b.norm1.data(), n, d, eps, h.data());
  std::vector<float> qkv(static_cast<size_t>(n * 3 * d));
  linear_rows(h.data(), n, b.qkv, b.qkv_bias.empty() ? nullptr : b.qkv_bias.data(), qkv.data());
  cpu::rope_2d_neox(qkv.data(), n, 3 * d, cfg_.n_heads, cfg_.head_dim, pos_h, pos_w, cfg_.rope_theta);
  cpu::rope_2d_neox(qkv.data() + d, n, 3 * d, cfg_.n_heads, cfg_.head_dim, pos_h, pos_w, cfg_.rope_theta);
  for (int64_t f0 = 0; f0 < n; f0 += frame_len)
    detail::vision_attention(qkv.data() + f0 * 3 * d, 3 * d, frame_len, cfg_.n_heads, cfg_.head_dim, h.data() + f0 * d,
                             d);
  qkv = {};
  std::vector<float> y(size_t(row_chunk * d)), g(size_t(row_chunk * o)), u(size_t(row_chunk * o));
  for (int64_t r0 = 0; r0 < n; r0 += row_chunk) {
    const int64_t r = std::min(row_chunk, n - r0);
    cpu::linear(h.data() + r0 * d, r, b.proj, nullptr, y.data());
    cpu::add_inplace(x + r0 * d, y.data(), r * d);
  }
  // MLP half, in row chunks: x += down(silu(gate(norm2 x)) * up(norm2 x)).
  for (int64_t r0 = 0; r0 < n; r0 += row_chunk) {
    const int64_t r = std::min(row_chunk, n - r0);
    float* xr = x + r0 * d;
    float* hr = h.data() + r0 * d;
    cpu::rms_norm(xr, b.norm2.data(), r, d, eps, hr);
    cpu::linear(hr, r, b.gate, nullptr, g.data());
    cpu::linear(hr, r, b.up, nullptr, u.data());
    cpu::silu_mul(g.data(), u.data(), r * o, g.data());
    cpu::linear(g.data(), r, b.down, nullptr, y.data());
    cpu::add_inplace(xr, y.data(), r * d);
  }
}

void vision_tower::run_merger(const float* merged_in, int64_t n_out, float* out) const {
  const int64_t o = cfg_.out_hidden_size, f = cfg_.intermediate_size;
  std::vector<float> z(static_cast<size_t>(row_chunk * o)), g(size_t(row_chunk * f)), u(size_t(row_chunk * f));
  for (int64_t r0 = 0; r0 < n_out; r0 += row_chunk) {
    const int64_t r = std::min(row_chunk, n_out - r0);
    cpu::linear(merged_in + r0 * o, r, merger_proj_, nullptr, z.data());
    cpu::layer_norm(z.data(), merger_norm_w_.data(), merger_norm_b_.data(), r, o, merger_ln_eps, z.data());
    cpu::gelu_erf(z.data(), r * o);
    cpu::linear(z.data(), r, merger_gate_, nullptr, g.data());
    cpu::linear(z.data(), r, merger_up_, nullptr, u.data());
    cpu::silu_mul(g.data(), u.data(), r * f, g.data());
    cpu::linear(g.data(), r, merger_down_, nullptr, out + r0 * o);
  }
}

std::vector<float> vision_tower::encode(const vision_input& image) const {
  const int32_t merge = cfg_.spatial_merge_size;
  if (image.grid_t <= 0 || image.grid_h <= 0 || image.grid_w <= 0 || image.grid_h % merge || image.grid_w % merge)
    throw error("vision input: grid (t=" + std::to_string(image.grid_t) + ", h=" + std::to_string(image.grid_h) +
                ", w=" + std::to_string(image.grid_w) + ") must be positive with h and w multiples of " +
                std::to_string(merge));
  const int64_t frame_len = int64_t(image.grid_h) * image.grid_w;
  const int64_t n = frame_len * image.grid_t;
  const int64_t pd = cfg_.patch_dim();
  if (int64_t(image.pixel_values.size()) != n * pd)
    throw error("vision input: pixel_values has " + std::to_string(image.pixel_values.size()) + " floats; grid " +
                std::to_string(image.grid_t) + "x" + std::to_string(image.grid_h) + "x" +
                std::to_string(image.grid_w) + " needs " + std::to_string(n * pd));
  const int64_t d = cfg_.hidden_size, o = cfg_.out_hidden_size;

  // Patch embed (Conv3d with kernel = stride = patch as a linear on each row) and post-conv RMSNorm.
  std::vector<float> x(static_cast<size_t>(n * d));
  linear_rows(image.pixel_values.data(), n, patch_embed_, patch_embed_bias_.data(), x.data());
  dump("patch_embed", x.data(), n, d);
  cpu::rms_norm(x.data(), post_conv_norm_.data(), n, d, cfg_.rms_norm_eps, x.data());
  dump("post_conv_layernorm", x.data(), n, d);

  // Positions of one frame, repeated per frame (RoPE and the position table use the same (h, w)).
  std::vector<int32_t> fh, fw;
  vision_patch_positions(image.grid_h, image.grid_w, merge, fh, fw);
  std::vector<int32_t> pos_h(static_cast<size_t>(n)), pos_w(static_cast<size_t>(n));
  for (int64_t t = 0; t < image.grid_t; ++t) {
    std::copy(fh.begin(), fh.end(), pos_h.begin() + t * frame_len);
    std::copy(fw.begin(), fw.end(), pos_w.begin() + t * frame_len);
  }
  {
    std::vector<float> pe(static_cast<size_t>(frame_len * d));
    interpolate_pos_embed(pos_table_.data(), cfg_.pos_grid(), int32_t(d), image.grid_h, image.grid_w, fh.data(),
                          fw.data(), frame_len, pe.data());
    dump("pos_embed", pe.data(), frame_len, d);
    for (int64_t t = 0; t < image.grid_t; ++t) cpu::add_inplace(x.data() + t * frame_len * d, pe.data(), frame_len * d);
  }
  dump("embeddings", x.data(), n, d);

  for (size_t i = 0; i < blocks_.size(); ++i) {
    run_block(blocks_[i], x.data(), n, frame_len, pos_h.data(), pos_w.data());
    dump("blocks." + std::to_string(i), x.data(), n, d);
  }
  cpu::rms_norm(x.data(), post_norm_.data(), n, d, cfg_.rms_norm_eps, x.data());
  dump("post_layernorm", x.data(), n, d);

  // Downsample: every merge*merge consecutive tokens form one block (rows hm, cols wm); the conv is a linear on
  // the vector ordered (c, hm, wm).
  const int64_t mm = int64_t(merge) * merge;
  const int64_t n_out = n / mm;
  std::vector<float> merged(static_cast<size_t>(n_out * d * mm));
  default_thread_pool().parallel_for(n_out, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* dst = merged.data() + b * d * mm;
      for (int64_t k = 0; k < mm; ++k) {
        const float* src = x.data() + (b * mm + k) * d;
        for (int64_t c = 0; c < d; ++c) dst[c * mm + k] = src[c];
      }
    }
  });
  x = {};
  std::vector<float> down(static_cast<size_t>(n_out * o));
  linear_rows(merged.data(), n_out, downsample_, downsample_bias_.data(), down.data());
  merged = {};
  dump("downsample", down.data(), n_out, o);

  std::vector<float> out(static_cast<size_t>(n_out * o));
  run_merger(down.data(), n_out, out.data());
  dump("merger", out.data(), n_out, o);
  return out;
}

}  // namespace autoglm::glm4v
