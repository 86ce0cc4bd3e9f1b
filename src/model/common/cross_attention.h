// model/common/cross_attention.h: the cross-attention residual block shared by model families, written over ops:
//
//   x = x + gate * o_proj(attention(q_norm(q_proj(norm(x))), K, V))     K = k_norm(k_proj(media)), V = v_proj(media)
//
// Whisper's decoder uses it ungated (gate 1, LayerNorm with bias, biased q/v/o projections, no q/k norms) over the
// encoder states of one request; Flamingo / Llama 3.2 Vision layers gate it with tanh(g) (RMSNorm, per-head RMSNorm
// on q and k, no biases) over image states. K and V depend only on the media, so they are computed once per request
// (cross_attention_kv) and every decoder step reuses them (Whisper's "encoder KV cache").
//
// Why AutoGLM's own image path is not this: GLM-4.1V (model/glm4v) places image embeddings in the input sequence,
// in place of the <|image|> placeholder rows, and they go through the decoder's ordinary causal self-attention
// with M-RoPE positions. Its checkpoint has no cross-attention weights or gates at all: the images are tokens of
// the prompt, cached in the paged KV cache like text (and prefix-shared), which is what lets a phone-agent turn
// re-use the cached screenshot. Cross-attention is for families trained with it (Whisper, Mllama).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/weights.h"
#include "ops/context.h"

namespace autoglm::layers {

// H = hidden width of x, M = width of the media states, qd = n_heads*head_dim, kvd = n_kv_heads*head_dim.
struct cross_attention_weights {
  tensor norm_w;                // [H] F32: pre-norm of x
  tensor norm_b;                // [H] F32: LayerNorm's bias; empty: the pre-norm is an RMSNorm
  float norm_eps = 1e-5f;
  linear_weight q_proj;         // [qd, H] (+ bias)
  linear_weight k_proj;         // [kvd, M] (+ bias)
  linear_weight v_proj;         // [kvd, M] (+ bias)
  linear_weight o_proj;         // [H, qd] (+ bias)
  tensor q_norm, k_norm;        // [head_dim] F32 per-head RMSNorm weights (Llama 3.2 Vision); empty: none
  float qk_norm_eps = 1e-6f;
  int32_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float gate = 1.0f;            // tanh(g) of a gated layer, computed once at load; 1: ungated
};

// K and V of one request's media: [n_media, kvd] F32 each, persistent on the context's device.
struct cross_kv {
  tensor k, v;
};

// Computes K and V of `media` [n_media, M] (F32, on ctx's device). Uses ctx's scratch arena (not reset).
cross_kv cross_attention_kv(exec_context& ctx, const cross_attention_weights& w, const tensor& media);

// x [n, H] += gate * the block's output. Scratch from ctx's arena (not reset).
void cross_attention_residual(exec_context& ctx, const cross_attention_weights& w, const cross_kv& kv, tensor& x);

}  // namespace autoglm::layers
