// model/glm4v/weights.cpp: checkpoint names -> prepared tensors (see weights.h).
#include "model/glm4v/weights.h"

#include <string>

#include "core/error.h"
#include "model/common/weight_binder.h"

namespace autoglm::glm4v {

namespace {

std::string layer_prefix(const std::string& base, int32_t i) { return base + std::to_string(i) + "."; }

}  // namespace

text_weights bind_text_weights(const config& cfg, const tensor_source& src, exec_context& ctx) {
  const text_config& t = cfg.text;
  const int64_t H = t.hidden_size, I = t.intermediate_size, V = t.vocab_size;
  const int64_t qd = int64_t(t.n_heads) * t.head_dim, kvd = int64_t(t.n_kv_heads) * t.head_dim;
  const std::string p = "model.language_model.";
  weight_binder b(src, ctx);
  text_weights w;
  w.embed_tokens = b.table(p + "embed_tokens.weight", {V, H}, op_id::EMBEDDING);
  w.final_norm = b.param(p + "norm.weight", {H});
  w.lm_head = b.linear("lm_head.weight", {V, H}, "", shard_kind::VOCAB);
  w.layers.resize(size_t(t.n_layers));
  for (int32_t i = 0; i < t.n_layers; ++i) {
    const std::string l = layer_prefix(p + "layers.", i);
    const std::string a = l + "self_attn.";
    text_layer_weights& L = w.layers[size_t(i)];
    L.input_norm = b.param(l + "input_layernorm.weight", {H});
    L.post_self_attn_norm = b.param(l + "post_self_attn_layernorm.weight", {H});
    L.post_attention_norm = b.param(l + "post_attention_layernorm.weight", {H});
    L.post_mlp_norm = b.param(l + "post_mlp_layernorm.weight", {H});
    auto bias = [&](const char* proj) { return t.attention_bias ? a + proj + ".bias" : std::string(); };
    L.q_proj = b.linear(a + "q_proj.weight", {qd, H}, bias("q_proj"), shard_kind::COLUMN);
    L.k_proj = b.linear(a + "k_proj.weight", {kvd, H}, bias("k_proj"), shard_kind::COLUMN);
    L.v_proj = b.linear(a + "v_proj.weight", {kvd, H}, bias("v_proj"), shard_kind::COLUMN);
    L.o_proj = b.linear(a + "o_proj.weight", {H, qd}, "", shard_kind::ROW);
    L.gate_up_proj = b.linear(l + "mlp.gate_up_proj.weight", {2 * I, H}, "", shard_kind::COLUMN);
    L.down_proj = b.linear(l + "mlp.down_proj.weight", {H, I}, "", shard_kind::ROW);
  }
  return w;
}

vision_weights bind_vision_weights(const config& cfg, const tensor_source& src, exec_context& ctx) {
  const vision_config& v = cfg.vision;
  if (!v.present) throw error("config has no vision_config: this model cannot encode images");
  const int64_t d = v.hidden_size, o = v.out_hidden_size, f = v.intermediate_size, m = v.spatial_merge_size;
  const int64_t g = v.pos_grid();
  const std::string p = "model.visual.";
  // The vision tower is small next to the decoder: every rank keeps all of it.
  const shard_kind rep = shard_kind::REPLICATED;
  weight_binder b(src, ctx);
  vision_weights w;
  w.patch_embed = b.linear(p + "patch_embed.proj.weight", {d, v.in_channels, v.temporal_patch_size, v.patch_size,
                                                           v.patch_size},
                           p + "patch_embed.proj.bias", rep);
  w.post_conv_norm = b.param(p + "post_conv_layernorm.weight", {d});
  w.pos_table = b.param(p + "embeddings.position_embedding.weight", {g * g, d});
  w.blocks.resize(size_t(v.depth));
  for (int32_t i = 0; i < v.depth; ++i) {
    const std::string l = layer_prefix(p + "blocks.", i);
    vision_block_weights& B = w.blocks[size_t(i)];
    B.norm1 = b.param(l + "norm1.weight", {d});
    B.norm2 = b.param(l + "norm2.weight", {d});
    B.qkv = b.linear(l + "attn.qkv.weight", {3 * d, d}, v.attention_bias ? l + "attn.qkv.bias" : "", rep);
    B.proj = b.linear(l + "attn.proj.weight", {d, d}, "", rep);
    B.gate = b.linear(l + "mlp.gate_proj.weight", {o, d}, "", rep);
    B.up = b.linear(l + "mlp.up_proj.weight", {o, d}, "", rep);
    B.down = b.linear(l + "mlp.down_proj.weight", {d, o}, "", rep);
  }
  w.post_norm = b.param(p + "post_layernorm.weight", {d});
  w.downsample = b.linear(p + "downsample.weight", {o, d, m, m}, p + "downsample.bias", rep);
  w.merger_proj = b.linear(p + "merger.proj.weight", {o, o}, "", rep);
  w.merger_norm_w = b.param(p + "merger.post_projection_norm.weight", {o});
  w.merger_norm_b = b.param(p + "merger.post_projection_norm.bias", {o});
  w.merger_gate = b.linear(p + "merger.gate_proj.weight", {f, o}, "", rep);
  w.merger_up = b.linear(p + "merger.up_proj.weight", {f, o}, "", rep);
  w.merger_down = b.linear(p + "merger.down_proj.weight", {o, f}, "", rep);
  return w;
}

size_t decode_weight_bytes(const text_weights& w) {
  size_t n = w.lm_head.weight_bytes();
  for (const text_layer_weights& L : w.layers)
    for (const linear_weight* lw : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_up_proj, &L.down_proj})
      n += lw->weight_bytes();
  return n;
}

}  // namespace autoglm::glm4v
