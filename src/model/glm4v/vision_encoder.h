// model/glm4v/vision_encoder.h: the GLM-4.1V vision tower (HF Glm4vVisionModel, spec section 4) written once over
// ops: patch embed (the Conv3d as a linear), post-conv RMSNorm, the learned position table sampled bicubically
// for the image's grid, depth ViT blocks (RMSNorm, qkv, 2-D RoPE, attention within each temporal frame, proj;
// RMSNorm, SiLU-gated MLP), post RMSNorm, the 2x2 merge + downsample conv (a permuting copy, then a linear) and
// the patch merger (proj, LayerNorm, GELU, SiLU-gated MLP). Stateless; activations in fp32.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "autoglm/types.h"
#include "core/tensor.h"
#include "model/glm4v/config.h"
#include "model/glm4v/weights.h"
#include "ops/context.h"

namespace autoglm::glm4v {

// (h, w) of every patch of one frame in the processor's row order (hb, wb, hm, wm): h = merge*hb + hm,
// w = merge*wb + wm. grid_h and grid_w must be multiples of merge. Outputs: [grid_h*grid_w] each.
void frame_patch_positions(int32_t grid_h, int32_t grid_w, int32_t merge, std::vector<int32_t>& pos_h,
                           std::vector<int32_t>& pos_w);

class vision_encoder {
 public:
  // weights: bound and prepared for the device of the contexts encode will run on (bind_vision_weights).
  vision_encoder(const vision_config& cfg, vision_weights weights) : cfg_(cfg), w_(std::move(weights)) {}

  // pixels [grid_t*grid_h*grid_w, patch_dim] in the processor's patch order -> an owned tensor [n_tokens,
  // out_hidden_size] F32 on ctx's device, n_tokens = grid_t * (grid_h/merge) * (grid_w/merge). Each temporal
  // frame attends only within itself. Throws autoglm::error for a grid or pixel buffer that does not fit the
  // model. Uses ctx's scratch arena (reset here) and dump callback.
  tensor encode(exec_context& ctx, const vision_input& image) const;

  const vision_config& cfg() const { return cfg_; }

 private:
  struct activations;
  void run_block(exec_context& ctx, const vision_block_weights& b, const tensor& pos, const tensor& segments,
                 activations& a) const;
  void run_merger(exec_context& ctx, const tensor& in, tensor& out) const;

  vision_config cfg_;
  vision_weights w_;
};

}  // namespace autoglm::glm4v
