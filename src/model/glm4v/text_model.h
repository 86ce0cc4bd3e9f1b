// model/glm4v/text_model.h: the GLM-4.1V text decoder (spec section 2) on the CPU backend.
// Weights stay memory-mapped in their file dtype; activations and the KV cache are fp32 (the parity reference
// is Hugging Face in fp32 on the bf16 weights).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/weight_view.h"
#include "formats/safetensors.h"
#include "model/glm4v/config.h"
#include "model/model_runner.h"

namespace autoglm::glm4v {

// Called with every named intermediate when set: name, data [rows, cols] row-major.
using dump_fn = std::function<void(const std::string& name, const float* data, int64_t rows, int64_t cols)>;

struct text_layer {
  std::vector<float> input_norm;           // [hidden]
  std::vector<float> post_self_attn_norm;  // [hidden] sandwich norm on the attention output
  std::vector<float> post_attention_norm;  // [hidden] pre-MLP norm
  std::vector<float> post_mlp_norm;        // [hidden] sandwich norm on the MLP output
  weight_view q_proj;                      // [n_heads*head_dim, hidden]
  weight_view k_proj;                      // [n_kv_heads*head_dim, hidden]
  weight_view v_proj;                      // [n_kv_heads*head_dim, hidden]
  weight_view o_proj;                      // [hidden, n_heads*head_dim], no bias
  std::vector<float> q_bias, k_bias, v_bias;  // empty when attention_bias is false
  weight_view gate_up_proj;                // [2*intermediate, hidden], gate rows first
  weight_view down_proj;                   // [hidden, intermediate]
};

class text_model {
 public:
  text_model(const config& cfg, const tensor_store& store);

  void allocate_kv_cache(int32_t n_blocks, int32_t block_size);
  size_t kv_bytes_per_token() const;
  void forward(const forward_batch& batch, float* logits);
  void set_dump(dump_fn fn) { dump_ = std::move(fn); }
  // Bytes of weights read per decoded token (all layers + lm_head; the embedding row is negligible).
  size_t weight_bytes_per_token() const { return weight_bytes_per_token_; }

 private:
  void embed(const forward_batch& batch, float* x) const;
  void attention_block(const text_layer& layer, int32_t il, const forward_batch& batch, float* x);
  void mlp_block(const text_layer& layer, int32_t il, int64_t n, float* x);
  void dump(const std::string& name, const float* data, int64_t rows, int64_t cols) const {
    if (dump_) dump_(name, data, rows, cols);
  }

  const config& cfg_;
  weight_view embed_tokens_;  // [vocab, hidden]
  weight_view lm_head_;       // [vocab, hidden]
  std::vector<float> final_norm_;
  std::vector<text_layer> layers_;
  size_t weight_bytes_per_token_ = 0;

  // Paged KV cache: per layer [n_blocks, block_size, n_kv_heads, head_dim] for K and for V.
  int32_t n_blocks_ = 0, block_size_ = 0;
  std::vector<aligned_buffer> k_cache_, v_cache_;

  // Scratch, grown on demand: [n_tokens, width] activations.
  aligned_buffer x_, h_, q_, k_, v_, attn_, gu_, mlp_, tmp_;
  dump_fn dump_;
};

}  // namespace autoglm::glm4v
