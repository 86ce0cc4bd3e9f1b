// model/whisper/weights.cpp: checkpoint names -> prepared tensors (see weights.h).
#include "model/whisper/weights.h"

#include <string>

#include "core/error.h"
#include "model/common/weight_binder.h"

namespace autoglm::whisper {

namespace {

// Whisper is small next to the decoders tensor parallelism is for: every rank keeps all of it.
constexpr shard_kind rep = shard_kind::REPLICATED;

attention_weights bind_attention(weight_binder& b, const std::string& p, const std::string& norm, int64_t D) {
  attention_weights a;
  a.norm_w = b.param(norm + ".weight", {D});
  a.norm_b = b.param(norm + ".bias", {D});
  a.q_proj = b.linear(p + "q_proj.weight", {D, D}, p + "q_proj.bias", rep);
  a.k_proj = b.linear(p + "k_proj.weight", {D, D}, "", rep);
  a.v_proj = b.linear(p + "v_proj.weight", {D, D}, p + "v_proj.bias", rep);
  a.out_proj = b.linear(p + "out_proj.weight", {D, D}, p + "out_proj.bias", rep);
  return a;
}

ffn_weights bind_ffn(weight_binder& b, const std::string& l, int64_t D, int64_t F) {
  ffn_weights f;
  f.norm_w = b.param(l + "final_layer_norm.weight", {D});
  f.norm_b = b.param(l + "final_layer_norm.bias", {D});
  f.fc1 = b.linear(l + "fc1.weight", {F, D}, l + "fc1.bias", rep);
  f.fc2 = b.linear(l + "fc2.weight", {D, F}, l + "fc2.bias", rep);
  return f;
}

std::string layer(const std::string& base, int32_t i) { return base + "layers." + std::to_string(i) + "."; }

}  // namespace

encoder_weights bind_encoder_weights(const config& cfg, const tensor_source& src, exec_context& ctx) {
  const int64_t D = cfg.d_model, F = cfg.encoder_ffn_dim, N = cfg.num_mel_bins, S = cfg.max_source_positions;
  const std::string p = "model.encoder.";
  weight_binder b(src, ctx);
  encoder_weights w;
  w.conv1 = b.linear(p + "conv1.weight", {D, N, 3}, p + "conv1.bias", rep);
  w.conv2 = b.linear(p + "conv2.weight", {D, D, 3}, p + "conv2.bias", rep);
  w.embed_positions = b.param(p + "embed_positions.weight", {S, D});
  w.layers.resize(size_t(cfg.encoder_layers));
  for (int32_t i = 0; i < cfg.encoder_layers; ++i) {
    const std::string l = layer(p, i);
    w.layers[size_t(i)].self_attn = bind_attention(b, l + "self_attn.", l + "self_attn_layer_norm", D);
    w.layers[size_t(i)].ffn = bind_ffn(b, l, D, F);
  }
  w.norm_w = b.param(p + "layer_norm.weight", {D});
  w.norm_b = b.param(p + "layer_norm.bias", {D});
  return w;
}

decoder_weights bind_decoder_weights(const config& cfg, const tensor_source& src, exec_context& ctx) {
  const int64_t D = cfg.d_model, F = cfg.decoder_ffn_dim, T = cfg.max_target_positions, V = cfg.vocab_size;
  const std::string p = "model.decoder.";
  weight_binder b(src, ctx);
  decoder_weights w;
  w.embed_tokens = b.table(p + "embed_tokens.weight", {V, D}, op_id::EMBEDDING);
  w.embed_positions = b.param(p + "embed_positions.weight", {T, D});
  w.layers.resize(size_t(cfg.decoder_layers));
  for (int32_t i = 0; i < cfg.decoder_layers; ++i) {
    const std::string l = layer(p, i);
    decoder_layer_weights& L = w.layers[size_t(i)];
    L.self_attn = bind_attention(b, l + "self_attn.", l + "self_attn_layer_norm", D);
    // The cross-attention block: encoder_attn's projections with its LayerNorm, no gate.
    const attention_weights x = bind_attention(b, l + "encoder_attn.", l + "encoder_attn_layer_norm", D);
    layers::cross_attention_weights& c = L.cross_attn;
    c.norm_w = x.norm_w;
    c.norm_b = x.norm_b;
    c.norm_eps = cfg.layer_norm_eps;
    c.q_proj = x.q_proj;
    c.k_proj = x.k_proj;
    c.v_proj = x.v_proj;
    c.o_proj = x.out_proj;
    c.n_heads = c.n_kv_heads = cfg.decoder_heads;
    c.head_dim = cfg.head_dim();
    L.ffn = bind_ffn(b, l, D, F);
  }
  w.norm_w = b.param(p + "layer_norm.weight", {D});
  w.norm_b = b.param(p + "layer_norm.bias", {D});
  if (src.has("proj_out.weight")) {
    w.proj_out = b.linear("proj_out.weight", {V, D}, "", shard_kind::VOCAB);
  } else {
    // Tied: the table already on the device serves as the output projection (no second upload).
    b.require_kernel(op_id::LINEAR, p + "embed_tokens.weight", w.embed_tokens.type(), "the tied output projection");
    w.proj_out.weight = w.embed_tokens;
    w.proj_out.name = p + "embed_tokens.weight (tied proj_out)";
    w.proj_out.shard.kind = shard_kind::VOCAB;
  }
  return w;
}

}  // namespace autoglm::whisper
