// model/whisper/weights.h: a Whisper checkpoint (transformers' WhisperForConditionalGeneration names) bound to the
// tensors the encoder and decoder run, prepared for one exec_context's device. The output projection is the token
// embedding (proj_out is tied to model.decoder.embed_tokens; a checkpoint that stores proj_out.weight anyway is
// read from there). k_proj has no bias in Whisper; q, v and out projections do.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "core/weights.h"
#include "formats/tensor_source.h"
#include "model/common/cross_attention.h"
#include "model/whisper/config.h"
#include "ops/context.h"

namespace autoglm::whisper {

// D = d_model, F = ffn width, N = num_mel_bins, S = max_source_positions, T = max_target_positions, V = vocab.
struct attention_weights {
  tensor norm_w, norm_b;  // [D] F32: the LayerNorm before the attention
  linear_weight q_proj;   // [D, D] + bias [D]
  linear_weight k_proj;   // [D, D], no bias
  linear_weight v_proj;   // [D, D] + bias [D]
  linear_weight out_proj; // [D, D] + bias [D]
};

struct ffn_weights {
  tensor norm_w, norm_b;  // [D] F32: final_layer_norm of the layer
  linear_weight fc1;      // [F, D] + bias [F]
  linear_weight fc2;      // [D, F] + bias [D]
};

struct encoder_layer_weights {
  attention_weights self_attn;
  ffn_weights ffn;
};

struct encoder_weights {
  linear_weight conv1;    // Conv1d [D, N, 3] as [D, 3N] (+ bias [D]): kernel 3, padding 1, stride 1
  linear_weight conv2;    // Conv1d [D, D, 3] as [D, 3D] (+ bias [D]): kernel 3, padding 1, stride 2
  tensor embed_positions; // [S, D] F32 (sinusoids, stored in the checkpoint)
  std::vector<encoder_layer_weights> layers;
  tensor norm_w, norm_b;  // [D] F32: model.encoder.layer_norm
};

struct decoder_layer_weights {
  attention_weights self_attn;                // causal, over the request's own tokens
  layers::cross_attention_weights cross_attn; // encoder_attn over the encoder states, ungated
  ffn_weights ffn;
};

struct decoder_weights {
  tensor embed_tokens;    // [V, D] in its storage dtype (EMBEDDING table)
  tensor embed_positions; // [T, D] F32
  std::vector<decoder_layer_weights> layers;
  tensor norm_w, norm_b;  // [D] F32: model.decoder.layer_norm
  linear_weight proj_out; // [V, D]: embed_tokens itself (tied)
};

// Throw autoglm::error naming the file and tensor (missing, mis-shaped, a dtype the device cannot run).
encoder_weights bind_encoder_weights(const config& cfg, const tensor_source& src, exec_context& ctx);
decoder_weights bind_decoder_weights(const config& cfg, const tensor_source& src, exec_context& ctx);

}  // namespace autoglm::whisper
