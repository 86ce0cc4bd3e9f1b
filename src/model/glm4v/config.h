// model/glm4v/config.h: the GLM-4.1V configuration, read from the model directory's config.json and
// generation_config.json. Every size and token id comes from the files (spec section 1); nothing is hard-coded.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace autoglm::glm4v {

struct text_config {
  int32_t vocab_size = 0;
  int32_t hidden_size = 0;
  int32_t intermediate_size = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;              // config "head_dim" if present, else hidden_size / n_heads
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  float partial_rotary_factor = 0.5f;
  int32_t rotary_dim = 0;            // head_dim * partial_rotary_factor
  std::array<int32_t, 3> mrope_section{};  // frequency pairs per plane (t, h, w); sums to rotary_dim / 2
  int32_t max_position_embeddings = 0;
  bool attention_bias = true;        // q/k/v bias (o_proj never has one)
};

struct vision_config {
  bool present = false;
  int32_t depth = 0;
  int32_t hidden_size = 0;
  int32_t n_heads = 0;
  int32_t head_dim = 0;
  int32_t patch_size = 14;
  int32_t temporal_patch_size = 2;
  int32_t spatial_merge_size = 2;
  int32_t image_size = 336;          // position table is (image_size / patch_size)^2 rows
  int32_t in_channels = 3;
  int32_t out_hidden_size = 0;       // = text hidden size; also the ViT block MLP width (HF uses it so)
  int32_t intermediate_size = 0;     // merger MLP width
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool attention_bias = false;
  int32_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int32_t pos_grid() const { return image_size / patch_size; }
};

struct config {
  std::string architecture;
  text_config text;
  vision_config vision;
  int32_t image_token_id = -1;
  int32_t video_token_id = -1;
  int32_t image_start_token_id = -1;
  int32_t image_end_token_id = -1;
  int32_t video_start_token_id = -1;
  int32_t video_end_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // union of config.json (top level and text_config) and generation_config.json

  // Reads DIR/config.json (+ generation_config.json when present), both regular files of at most 1 MiB. Every
  // size and id is range-checked (bounds in config.cpp); throws autoglm::error naming the file and the key.
  static config load(const std::string& model_dir);
};

}  // namespace autoglm::glm4v
