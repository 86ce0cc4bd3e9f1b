// autoglm/types.h: plain value types shared by the public API and the layers under it: what a loaded model
// is (model_info) and one preprocessed image (vision_input). No tensors, no backends, no model internals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace autoglm {

struct model_info {
  std::string architecture;          // "Glm4vForConditionalGeneration"
  int32_t vocab_size = 0;            // logits width (embedding rows)
  int32_t hidden_size = 0;
  int32_t n_layers = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t max_position_embeddings = 0;
  int32_t image_token_id = -1;       // placeholder id expanded to one token per image embedding row
  int32_t image_start_token_id = -1;
  int32_t image_end_token_id = -1;
  int32_t video_start_token_id = -1;
  int32_t video_end_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // union of config.json and generation_config.json
  bool has_vision = false;
};

// One preprocessed image as the model's vision tower consumes it.
struct vision_input {
  int32_t grid_t = 1, grid_h = 0, grid_w = 0;  // patch grid before the 2x2 merge
  std::vector<float> pixel_values;             // [grid_t*grid_h*grid_w, patch_dim] (patch_dim = 3*2*14*14)
  uint64_t content_hash = 0;                   // hash of the decoded pixels (cache key)
  int32_t n_tokens(int32_t merge = 2) const { return grid_t * (grid_h / merge) * (grid_w / merge); }
};

}  // namespace autoglm
