// model/glm4v/vision_encoder.cpp: the vision tower forward pass over ops (see vision_encoder.h).
#include "model/glm4v/vision_encoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm::glm4v {

namespace {

// Rows per pass through the MLPs on the CPU: their [rows, width] intermediates stay small (a 1080x2400 screenshot
// has 13k patches; full-height gate/up buffers would take 440 MB) while each pass is still a whole panel of the
// linear kernel. A GPU takes far more per pass (ops::rows_per_pass): GEMMs of 96 rows left most of an H200 idle.
constexpr int64_t cpu_row_chunk = 96;
// nn.LayerNorm(dim) default, used by merger.post_projection_norm (HF does not pass the config eps).
constexpr float merger_ln_eps = 1e-5f;

}  // namespace

// The activations of one encode, from the scratch arena.
// h (also attention's output), qkv, gate and up feed GEMMs or attention's tensor-core products: in the backend's
// type for those (ops::gemm_input_type: BF16 on CUDA); the rest F32.
struct vision_encoder::activations {
  tensor x;        // [n, d] residual stream
  tensor h;        // [n, d] normed input
  tensor qkv;      // [n, 3d] q | k | v
  tensor attn;     // [n, d] attention output, in h's memory
  tensor y;        // [n, d] F32 scratch of linear_add (the projection; rows [0, chunk) the MLP output)
  tensor gate, up; // [chunk, o]
};

void frame_patch_positions(int32_t grid_h, int32_t grid_w, int32_t merge, std::vector<int32_t>& pos_h,
                           std::vector<int32_t>& pos_w) {
  AG_CHECK(merge > 0 && grid_h % merge == 0 && grid_w % merge == 0, "frame_patch_positions: grid not divisible");
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

void vision_encoder::run_block(exec_context& ctx, const vision_block_weights& b, const tensor& pos,
                               const tensor& segments, activations& a) const {
  const int64_t n = a.x.rows(), d = cfg_.hidden_size;
  const float eps = cfg_.rms_norm_eps;
  // Attention half: h = norm1(x); qkv; 2-D RoPE on q and k; attention within each frame into h; x += proj(h).
  ops::rms_norm(ctx, a.x, b.norm1, eps, a.h);
  ops::linear(ctx, a.h, b.qkv, a.qkv);
  // q and k side by side are 2 n_heads heads of one rotation (each head rotates on its own): one pass.
  tensor qk = a.qkv.cols_view(0, 2 * d), q = a.qkv.cols_view(0, d), k = a.qkv.cols_view(d, d),
         v = a.qkv.cols_view(2 * d, d);
  ops::rope_2d(ctx, qk, 2 * cfg_.n_heads, cfg_.head_dim, pos, cfg_.rope_theta);
  ops::attention_dense(ctx, q, k, v, cfg_.n_heads, cfg_.head_dim, segments, 1.0f / std::sqrt(float(cfg_.head_dim)),
                       a.attn);
  ops::linear_add(ctx, a.attn, b.proj, a.y, a.x);  // a.y: scratch where the backend forms the product first
  // MLP half, in row chunks: x += down(silu(gate(norm2 x)) * up(norm2 x)).
  const int64_t chunk = a.gate.rows();
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t r = std::min(chunk, n - r0);
    tensor xr = a.x.rows_view(r0, r), hr = a.h.rows_view(r0, r), yr = a.y.rows_view(0, r);
    tensor g = a.gate.rows_view(0, r), u = a.up.rows_view(0, r);
    ops::rms_norm(ctx, xr, b.norm2, eps, hr);
    ops::linear(ctx, hr, b.gate, g);
    ops::linear(ctx, hr, b.up, u);
    ops::silu_mul(ctx, g, u, g);
    ops::linear_add(ctx, g, b.down, yr, xr);
  }
}

void vision_encoder::run_merger(exec_context& ctx, const tensor& in, tensor& out) const {
  const int64_t n_out = in.rows(), o = cfg_.out_hidden_size, f = cfg_.intermediate_size;
  const int64_t row_chunk = ops::rows_per_pass(ctx, (o + 2 * f) * int64_t(sizeof(float)), cpu_row_chunk);
  const int64_t chunk = std::min(row_chunk, n_out);
  // The last chunk may have fewer rows than the others; it takes the same type (a row count of only a few would
  // otherwise ask for F32 on a GPU: see ops::gemm_input_type).
  const dtype act = ops::gemm_input_type(ctx, chunk);
  tensor z = ops::scratch(ctx, dtype::F32, {chunk, o});
  tensor gate = ops::scratch(ctx, act, {chunk, f});
  tensor up = ops::scratch(ctx, act, {chunk, f});
  for (int64_t r0 = 0; r0 < n_out; r0 += row_chunk) {
    const int64_t r = std::min(row_chunk, n_out - r0);
    tensor zr = z.rows_view(0, r), g = gate.rows_view(0, r), u = up.rows_view(0, r), outr = out.rows_view(r0, r);
    ops::linear(ctx, in.rows_view(r0, r), w_.merger_proj, zr);
    ops::layer_norm(ctx, zr, w_.merger_norm_w, w_.merger_norm_b, merger_ln_eps, zr);
    ops::gelu(ctx, zr);
    ops::linear(ctx, zr, w_.merger_gate, g);
    ops::linear(ctx, zr, w_.merger_up, u);
    ops::silu_mul(ctx, g, u, g);
    ops::linear(ctx, g, w_.merger_down, outr);
  }
}

tensor vision_encoder::encode(exec_context& ctx, const vision_input& image) const {
  const int32_t merge = cfg_.spatial_merge_size;
  if (image.grid_t <= 0 || image.grid_h <= 0 || image.grid_w <= 0 || image.grid_h % merge || image.grid_w % merge)
    throw error("vision input: grid (t=" + std::to_string(image.grid_t) + ", h=" + std::to_string(image.grid_h) +
                ", w=" + std::to_string(image.grid_w) + ") must be positive with h and w multiples of " +
                std::to_string(merge));
  const int64_t frame_len = int64_t(image.grid_h) * image.grid_w;
  const int64_t n = frame_len * image.grid_t;
  const int64_t pd = cfg_.patch_dim();
  if (image.raw) {
    const raw_image& r = *image.raw;
    if (image.grid_t != 1 || cfg_.in_channels != 3 || r.horizontal.out_size != image.grid_w * cfg_.patch_size ||
        r.vertical.out_size != image.grid_h * cfg_.patch_size)
      throw error("vision input: an image to preprocess on the device resizes to " +
                  std::to_string(r.horizontal.out_size) + "x" + std::to_string(r.vertical.out_size) + ", not to its " +
                  std::to_string(image.grid_w) + "x" + std::to_string(image.grid_h) + " patch grid (one frame)");
  } else if (int64_t(image.pixel_values.size()) != n * pd)
    throw error("vision input: pixel_values has " + std::to_string(image.pixel_values.size()) + " floats; grid " +
                std::to_string(image.grid_t) + "x" + std::to_string(image.grid_h) + "x" +
                std::to_string(image.grid_w) + " needs " + std::to_string(n * pd));
  const int64_t d = cfg_.hidden_size, o = cfg_.out_hidden_size;
  const int64_t mm = int64_t(merge) * merge, n_out = n / mm;
  ctx.arena().reset();

  // Index inputs on the host, then on the device: (h, w) of every patch as [2, n] for RoPE (one frame's pattern
  // repeated per frame), of one frame as [2, frame_len] for the position table, and the frames as segments.
  std::vector<int32_t> fh, fw;
  frame_patch_positions(image.grid_h, image.grid_w, merge, fh, fw);
  std::vector<int32_t> host(size_t(2 * n + 2 * frame_len + image.grid_t + 1));
  int32_t* pos = host.data();
  int32_t* frame_pos = pos + 2 * n;
  int32_t* seg = frame_pos + 2 * frame_len;
  for (int64_t t = 0; t < image.grid_t; ++t) {
    std::copy(fh.begin(), fh.end(), pos + t * frame_len);
    std::copy(fw.begin(), fw.end(), pos + n + t * frame_len);
  }
  std::copy(fh.begin(), fh.end(), frame_pos);
  std::copy(fw.begin(), fw.end(), frame_pos + frame_len);
  for (int64_t t = 0; t <= image.grid_t; ++t) seg[t] = int32_t(t * frame_len);
  const tensor pos_d = ops::to_device(ctx, tensor::view(pos, dtype::I32, {2, n}));
  const tensor frame_pos_d = ops::to_device(ctx, tensor::view(frame_pos, dtype::I32, {2, frame_len}));
  const tensor seg_d = ops::to_device(ctx, tensor::view(seg, dtype::I32, {int64_t(image.grid_t) + 1}));
  // The patch rows: uploaded as preprocessed on the host, or made on the device from the decoded image (in the
  // patch embedding's GEMM input type: no F32 rows to round).
  tensor pixels;
  if (image.raw) {
    pixels = ops::scratch(ctx, ops::gemm_input_type(ctx, n), {n, pd});
    ops::image_patches(ctx, *image.raw, cfg_.patch_size, cfg_.temporal_patch_size, merge, pixels);
  } else {
    pixels = ops::to_device(ctx, tensor::view(image.pixel_values.data(), dtype::F32, {n, pd}));
  }

  activations a;
  a.x = ops::scratch(ctx, dtype::F32, {n, d});
  // Patch embed (Conv3d with kernel = stride = patch: a linear on each patch row) and post-conv RMSNorm.
  ops::linear(ctx, pixels, w_.patch_embed, a.x);
  ops::dump(ctx, "patch_embed", a.x);
  ops::rms_norm(ctx, a.x, w_.post_conv_norm, cfg_.rms_norm_eps, a.x);
  ops::dump(ctx, "post_conv_layernorm", a.x);
  {
    tensor pe = ops::scratch(ctx, dtype::F32, {frame_len, d});
    ops::pos_embed_bicubic(ctx, w_.pos_table, cfg_.pos_grid(), image.grid_h, image.grid_w, frame_pos_d, pe);
    ops::dump(ctx, "pos_embed", pe);
    for (int64_t t = 0; t < image.grid_t; ++t) {
      tensor xf = a.x.rows_view(t * frame_len, frame_len);
      ops::add(ctx, xf, pe);
    }
  }
  ops::dump(ctx, "embeddings", a.x);

  const int64_t mlp_rows = std::min(ops::rows_per_pass(ctx, 2 * o * int64_t(sizeof(float)), cpu_row_chunk), n);
  const dtype act = ops::gemm_input_type(ctx, mlp_rows);
  a.h = ops::scratch(ctx, act, {n, d});
  a.qkv = ops::scratch(ctx, act, {n, 3 * d});  // q, k, v feed attention's tensor-core products
  // The attention output feeds the projection's GEMM: of h's type, in h's memory (h is dead until norm2).
  a.attn = a.h;
  a.y = ops::scratch(ctx, dtype::F32, {n, d});  // linear_add's scratch (backends that form the product first)
  a.gate = ops::scratch(ctx, act, {mlp_rows, o});
  a.up = ops::scratch(ctx, act, {mlp_rows, o});
  for (size_t i = 0; i < w_.blocks.size(); ++i) {
    run_block(ctx, w_.blocks[i], pos_d, seg_d, a);
    ops::dump(ctx, "blocks." + std::to_string(i), a.x);
  }
  ops::rms_norm(ctx, a.x, w_.post_norm, cfg_.rms_norm_eps, a.x);
  ops::dump(ctx, "post_layernorm", a.x);

  // Downsample: every mm consecutive patches form one merge block (rows hm, cols wm); the conv is a linear on the
  // block's vector ordered (c, hm, wm). x read as [n_out, mm, d] is written through a [n_out, mm, d] view of
  // merged [n_out, d, mm] (strides swapped), so the copy runs over whole rows of d.
  tensor merged = ops::scratch(ctx, dtype::F32, {n_out, d, mm});
  tensor merged_as_x = tensor::strided(merged.data(), dtype::F32, {n_out, mm, d},
                                       {merged.stride(0), merged.stride(2), merged.stride(1)}, ctx.dev());
  ops::copy(ctx, a.x.reshape({n_out, mm, d}), merged_as_x);
  tensor down = ops::scratch(ctx, dtype::F32, {n_out, o});
  ops::linear(ctx, merged.reshape({n_out, d * mm}), w_.downsample, down);
  ops::dump(ctx, "downsample", down);

  tensor out = ops::alloc_persistent(ctx, dtype::F32, {n_out, o});
  run_merger(ctx, down, out);
  ops::dump(ctx, "merger", out);
  return out;
}

}  // namespace autoglm::glm4v
