// model/glm4v/weights.h: the GLM-4.1V checkpoint bound to the tensors the forward passes use (HF names, spec
// sections 2 and 4). Linear layers are linear_weight bundles (tensor in its storage format + F32 bias + shard
// spec) prepared for one exec_context's device; norms, biases and the vision position table are F32 params.
// Binding checks every shape and asks the kernel registry whether the device can run each weight's dtype, so a
// checkpoint the backend cannot run fails at load time, naming the tensor, the dtype and the device.
#pragma once

#include <cstddef>
#include <vector>

#include "core/tensor.h"
#include "core/weights.h"
#include "formats/tensor_source.h"
#include "model/glm4v/config.h"
#include "ops/context.h"

namespace autoglm::glm4v {

// H = hidden_size, I = intermediate_size, qd = n_heads*head_dim, kvd = n_kv_heads*head_dim, V = vocab_size.
struct text_layer_weights {
  tensor input_norm;           // [H] F32, pre-attention RMSNorm
  tensor post_self_attn_norm;  // [H] F32, sandwich norm on the attention output
  tensor post_attention_norm;  // [H] F32, pre-MLP RMSNorm
  tensor post_mlp_norm;        // [H] F32, sandwich norm on the MLP output
  linear_weight q_proj;        // [qd, H]  (+ bias [qd] when attention_bias)
  linear_weight k_proj;        // [kvd, H] (+ bias [kvd])
  linear_weight v_proj;        // [kvd, H] (+ bias [kvd])
  linear_weight qkv_proj;      // [qd + 2 kvd, H]: q | k | v stacked (when fused; q/k/v_proj are then empty)
  linear_weight o_proj;        // [H, qd], no bias
  linear_weight gate_up_proj;  // [2I, H]: gate rows [0, I), up rows [I, 2I)
  linear_weight down_proj;     // [H, I]
};

struct text_weights {
  tensor embed_tokens;   // [V, H] in its storage dtype (gathered by ops::embedding)
  tensor final_norm;     // [H] F32
  linear_weight lm_head; // [V, H]
  std::vector<text_layer_weights> layers;
};

// d = vision hidden_size, o = out_hidden_size (= text H; also the ViT MLP width, as HF builds it),
// f = vision intermediate_size (merger MLP), P = in_channels*temporal_patch*patch*patch, m = spatial_merge_size,
// g = image_size / patch_size (the position table grid).
struct vision_block_weights {
  tensor norm1, norm2;  // [d] F32
  linear_weight qkv;    // [3d, d]: rows [q | k | v], each head-major (+ bias [3d] when attention_bias)
  linear_weight proj;   // [d, d]
  linear_weight gate;   // [o, d]
  linear_weight up;     // [o, d]
  linear_weight down;   // [d, o]
};

struct vision_weights {
  linear_weight patch_embed;    // Conv3d [d, 3, t, p, p] as [d, P] (+ bias [d]): kernel = stride = patch
  tensor post_conv_norm;        // [d] F32
  tensor pos_table;             // [g*g, d] F32, row = r*g + c
  std::vector<vision_block_weights> blocks;
  tensor post_norm;             // [d] F32
  linear_weight downsample;     // Conv2d [o, d, m, m] as [o, d*m*m], input ordered (c, hm, wm) (+ bias [o])
  linear_weight merger_proj;    // [o, o]
  tensor merger_norm_w;         // [o] F32 (LayerNorm)
  tensor merger_norm_b;         // [o] F32
  linear_weight merger_gate;    // [f, o]
  linear_weight merger_up;      // [f, o]
  linear_weight merger_down;    // [o, f]
};

// One rank's part of the decoder under tensor parallelism (rank `rank` of `n_ranks`; one rank: everything).
// Query heads [q_head0, q_head0 + n_heads) and the KV heads they read, [kv_head0, kv_head0 + n_kv_heads): with more
// ranks than KV heads (GLM-4.1V has 2) each rank holds the one KV head its query heads share, so ranks of the same
// group hold copies of it. MLP columns [ffn0, ffn0 + intermediate) of gate and of up; lm_head rows
// [rank * vocab_rows, ...) with the last rank's share padded by zero rows.
struct text_shard {
  int32_t rank = 0, n_ranks = 1;
  int32_t q_head0 = 0, n_heads = 0;
  int32_t kv_head0 = 0, n_kv_heads = 0;
  int64_t ffn0 = 0, intermediate = 0;
  int64_t vocab_rows = 0;
};
// Throws autoglm::error saying which count does not split (heads, KV heads, MLP width) over n_ranks.
text_shard shard_text(const text_config& t, int32_t rank, int32_t n_ranks);

// Throw autoglm::error naming the file and tensor for a missing or mis-shaped tensor, and naming tensor, dtype and
// device for a dtype the context's backend has no kernel for.
// fuse_qkv: stack each layer's q/k/v into qkv_proj where the three share a dtype (one GEMV per layer instead of
// three: worth it on a GPU; on the CPU the stacked copy would duplicate mapped file pages in memory).
text_weights bind_text_weights(const config& cfg, const tensor_source& src, exec_context& ctx,
                               const text_shard& shard, bool fuse_qkv);
vision_weights bind_vision_weights(const config& cfg, const tensor_source& src, exec_context& ctx);

// Bytes of weights streamed to decode one token: every decoder linear plus lm_head (the one embedding row read
// per token is negligible).
size_t decode_weight_bytes(const text_weights& w);
// Maps in now the host pages of those weights (core's prefault_read), so the first forward does not fault them in a
// page at a time (a 9B Q4_0 decoder: ~80k faults). Returns the bytes the kernel took; 0 where it does not do it.
size_t prefault_decode_weights(const text_weights& w);

}  // namespace autoglm::glm4v
