// model/glm4v/vision.h: TRANSITIONAL: the old CPU-only vision tower, kept only while
// tests/kernels/moved_kernels_test.cpp and tests/vision/vision_encoder_vs_old_test.cpp compare against it; the
// model uses vision_encoder.h. The GLM-4.1V vision tower (HF Glm4vVisionModel, spec section 4) on the CPU: patch embed,
// post-conv RMSNorm, bicubic-interpolated learned position table, depth ViT blocks with 2-D RoPE, post RMSNorm,
// 2x2 downsample conv and the patch merger. Weights stay in their file dtype (mmap); activations are fp32, as in
// the fp32 reference (HF loaded with dtype=float32).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/weight_view.h"
#include "model/glm4v/config.h"
#include "autoglm/types.h"

namespace autoglm {
class tensor_store;
}

namespace autoglm::glm4v {

// (h, w) of every patch of one frame in the processor's row order (hb, wb, hm, wm): h = merge*hb + hm,
// w = merge*wb + wm. grid_h and grid_w must be multiples of merge. Outputs: [grid_h*grid_w] each.
void vision_patch_positions(int32_t grid_h, int32_t grid_w, int32_t merge, std::vector<int32_t>& pos_h,
                            std::vector<int32_t>& pos_w);

// The learned position table P [table_grid*table_grid, dim] (row = r*table_grid + c) sampled at each patch as
// F.grid_sample(mode=bicubic, align_corners=False, padding_mode=border) does in fp32 for an image whose patch
// grid is (grid_h, grid_w): out [n, dim].
void interpolate_pos_embed(const float* table, int32_t table_grid, int32_t dim, int32_t grid_h, int32_t grid_w,
                           const int32_t* pos_h, const int32_t* pos_w, int64_t n, float* out);

class vision_tower {
 public:
  // name, data, rows, cols: called with intermediate activations when set (layer-by-layer diffs).
  using dump_fn = std::function<void(const std::string&, const float*, int64_t, int64_t)>;

  // Binds every model.visual.* tensor with its expected shape; throws autoglm::error naming a missing or
  // mis-shaped tensor (or an unsupported dtype).
  vision_tower(const config& cfg, const tensor_store& store);

  // pixels [grid_t*grid_h*grid_w, patch_dim] in the processor's patch order -> [n_tokens, out_hidden_size],
  // n_tokens = grid_t * (grid_h/merge) * (grid_w/merge). Each temporal frame attends only within itself.
  // Throws autoglm::error for a grid or pixel buffer that does not fit the model.
  std::vector<float> encode(const vision_input& image) const;

  void set_dump(dump_fn fn) { dump_ = std::move(fn); }
  const vision_config& cfg() const { return cfg_; }

 private:
  struct block_weights {
    std::vector<float> norm1, norm2;  // [hidden]
    weight_view qkv;                  // [3*hidden, hidden]; rows [q | k | v], each head-major
    std::vector<float> qkv_bias;      // [3*hidden] or empty
    weight_view proj;                 // [hidden, hidden]
    weight_view gate, up;             // [out_hidden, hidden] (HF's ViT MLP width is out_hidden_size)
    weight_view down;                 // [hidden, out_hidden]
  };

  void dump(const std::string& name, const float* data, int64_t rows, int64_t cols) const;
  void run_block(const block_weights& b, float* x, int64_t n, int64_t frame_len, const int32_t* pos_h,
                 const int32_t* pos_w) const;
  void run_merger(const float* merged_in, int64_t n_out, float* out) const;

  vision_config cfg_;
  weight_view patch_embed_;              // [hidden, patch_dim]
  std::vector<float> patch_embed_bias_;  // [hidden]
  std::vector<float> post_conv_norm_;    // [hidden]
  std::vector<float> pos_table_;         // [pos_grid^2, hidden] fp32
  std::vector<block_weights> blocks_;
  std::vector<float> post_norm_;         // [hidden]
  weight_view downsample_;               // [out_hidden, hidden*merge*merge], input ordered (c, hm, wm)
  std::vector<float> downsample_bias_;   // [out_hidden]
  weight_view merger_proj_;              // [out_hidden, out_hidden]
  std::vector<float> merger_norm_w_, merger_norm_b_;  // [out_hidden]
  weight_view merger_gate_, merger_up_;  // [intermediate, out_hidden]
  weight_view merger_down_;              // [out_hidden, intermediate]
  dump_fn dump_;
};

}  // namespace autoglm::glm4v
