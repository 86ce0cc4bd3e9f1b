// model/glm4v/weights.cpp: checkpoint names -> prepared tensors (see weights.h).
#include "model/glm4v/weights.h"

#include <string>

#include "core/error.h"
#include "core/file_io.h"
#include "core/log.h"
#include "model/common/weight_binder.h"
#include "ops/repack_cache.h"

namespace autoglm::glm4v {

namespace {

std::string layer_prefix(const std::string& base, int32_t i) { return base + std::to_string(i) + "."; }

}  // namespace

text_shard shard_text(const text_config& t, int32_t rank, int32_t n_ranks) {
  AG_CHECK(n_ranks >= 1 && rank >= 0 && rank < n_ranks, "shard_text: rank outside the group");
  const std::string ways = " over " + std::to_string(n_ranks) + " tensor-parallel ranks";
  if (t.n_heads % n_ranks != 0)
    throw error("the model's " + std::to_string(t.n_heads) + " attention heads do not split" + ways);
  if (t.intermediate_size % n_ranks != 0)
    throw error("the model's MLP width " + std::to_string(t.intermediate_size) + " does not split" + ways);
  text_shard s;
  s.rank = rank;
  s.n_ranks = n_ranks;
  s.n_heads = t.n_heads / n_ranks;
  s.q_head0 = rank * s.n_heads;
  if (t.n_kv_heads % n_ranks == 0) {
    s.n_kv_heads = t.n_kv_heads / n_ranks;
    s.kv_head0 = rank * s.n_kv_heads;
  } else if (n_ranks % t.n_kv_heads == 0) {
    // Each KV head's query group spans n_ranks / n_kv_heads ranks, which all hold that head.
    s.n_kv_heads = 1;
    s.kv_head0 = s.q_head0 / (t.n_heads / t.n_kv_heads);
  } else {
    throw error("the model's " + std::to_string(t.n_kv_heads) + " KV heads neither split" + ways +
                " nor replicate evenly over them");
  }
  s.intermediate = t.intermediate_size / n_ranks;
  s.ffn0 = rank * s.intermediate;
  s.vocab_rows = (int64_t(t.vocab_size) + n_ranks - 1) / n_ranks;
  return s;
}

text_weights bind_text_weights(const config& cfg, const tensor_source& src, exec_context& ctx,
                               const text_shard& s, bool fuse_qkv) {
  const text_config& t = cfg.text;
  const int64_t H = t.hidden_size, I = t.intermediate_size, V = t.vocab_size, hd = t.head_dim;
  const int64_t qd = int64_t(t.n_heads) * hd, kvd = int64_t(t.n_kv_heads) * hd;
  const std::string p = "model.language_model.";
  weight_binder b(src, ctx, s.rank, s.n_ranks);
  const repack_cache::counts cached_before = repack_cache::totals();
  text_weights w;
  // The token table stays whole on every rank (one row is read per token).
  w.embed_tokens = b.table(p + "embed_tokens.weight", {V, H}, op_id::EMBEDDING);
  w.final_norm = b.param(p + "norm.weight", {H});
  w.lm_head = b.linear_vocab("lm_head.weight", {V, H});
  // Column-parallel row ranges of this rank: its heads of q / k / v, its columns of gate and of up.
  const weight_binder::row_ranges q_rows = {{s.q_head0 * hd, s.n_heads * hd}};
  const weight_binder::row_ranges kv_rows = {{s.kv_head0 * hd, s.n_kv_heads * hd}};
  const weight_binder::row_ranges gate_up_rows = {{s.ffn0, s.intermediate}, {I + s.ffn0, s.intermediate}};
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
    if (fuse_qkv)
      L.qkv_proj = b.linear_stacked(a + "qkv_proj(stacked)", {{a + "q_proj.weight", {qd, H}, bias("q_proj"), q_rows},
                                                              {a + "k_proj.weight", {kvd, H}, bias("k_proj"), kv_rows},
                                                              {a + "v_proj.weight", {kvd, H}, bias("v_proj"), kv_rows}});
    if (L.qkv_proj.empty()) {  // not asked for, or q/k/v of different types (a GGUF file's mixed precision)
      L.q_proj = b.linear_rows(a + "q_proj.weight", {qd, H}, bias("q_proj"), q_rows);
      L.k_proj = b.linear_rows(a + "k_proj.weight", {kvd, H}, bias("k_proj"), kv_rows);
      L.v_proj = b.linear_rows(a + "v_proj.weight", {kvd, H}, bias("v_proj"), kv_rows);
    }
    L.o_proj = b.linear_cols(a + "o_proj.weight", {H, qd}, "", s.q_head0 * hd, s.n_heads * hd);
    L.gate_up_proj = b.linear_rows(l + "mlp.gate_up_proj.weight", {2 * I, H}, "", gate_up_rows);
    L.down_proj = b.linear_cols(l + "mlp.down_proj.weight", {H, I}, "", s.ffn0, s.intermediate);
  }
  // Whether the weight copies kept on disk served this load (ranks binding at once count together).
  if (const std::string dir = repack_cache::directory(); !dir.empty() && s.rank == 0) {
    const repack_cache::counts now = repack_cache::totals();
    AG_LOG_INFO("repack cache {}: {} weight copies mapped, {} made and kept, {} found stale and remade", dir,
                now.mapped - cached_before.mapped, now.written - cached_before.written,
                now.rejected - cached_before.rejected);
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

namespace {

// fn(lw) for every linear weight a decode step reads: lm_head, then each layer's projections that are present.
template <class F>
void for_each_decode_weight(const text_weights& w, F&& fn) {
  if (!w.lm_head.empty()) fn(w.lm_head);
  for (const text_layer_weights& L : w.layers)
    for (const linear_weight* lw :
         {&L.q_proj, &L.k_proj, &L.v_proj, &L.qkv_proj, &L.o_proj, &L.gate_up_proj, &L.down_proj})
      if (!lw->empty()) fn(*lw);
}

}  // namespace

size_t prefault_decode_weights(const text_weights& w) {
  size_t n = 0;
  for_each_decode_weight(w, [&](const linear_weight& lw) {
    // A repacked weight's kernels read its copy (written at load, so resident), not the mapping.
    if (lw.weight.dev().kind == device_kind::CPU && lw.repacked.empty() &&
        prefault_read(lw.weight.data(), lw.weight_bytes()))
      n += lw.weight_bytes();
  });
  return n;
}

size_t decode_weight_bytes(const text_weights& w) {
  size_t n = 0;
  for_each_decode_weight(w, [&](const linear_weight& lw) { n += lw.weight_bytes(); });
  return n;
}

}  // namespace autoglm::glm4v
