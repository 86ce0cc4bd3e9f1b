// model/whisper/decoder.h: Whisper's text decoder over ops: token embedding + learned positions -> decoder_layers x
// [LayerNorm -> causal self-attention -> residual; cross-attention over the encoder states (model/common) ->
// residual; LayerNorm -> fc1 -> GELU -> fc2 -> residual] -> LayerNorm -> tied output projection.
//
// Per-request state lives outside the decoder, in a decoder_state the runtime owns: the self-attention K/V of the
// tokens so far and the cross-attention K/V computed once from the encoder output. The causal self-attention
// reuses the text decoders' paged kernels (KV_STORE + ATTENTION_PAGED) over a small private cache: one sequence
// whose blocks 0..n-1 are its positions in order, so slot = position and no block manager is involved.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "core/kernel_registry.h"
#include "core/tensor.h"
#include "model/common/cross_attention.h"
#include "model/whisper/config.h"
#include "model/whisper/weights.h"
#include "ops/context.h"

namespace autoglm::whisper {

struct decoder_state {
  std::vector<paged_kv_layer> self_kv;   // per layer: [n_blocks, block_size, heads, head_dim] F32
  std::vector<layers::cross_kv> cross;   // per layer: K, V [max_source_positions, d_model]
  tensor block_table;                    // I32 [1, n_blocks] = 0, 1, ... on the device
  int32_t n_past = 0;                    // tokens already in self_kv
};

class decoder {
 public:
  static constexpr int32_t k_block_size = 16;

  decoder(const config& cfg, decoder_weights w) : cfg_(cfg), w_(std::move(w)) {}

  // A state for one window's encoder output [max_source_positions, d_model] (on ctx's device): the cross K/V of
  // every layer and an empty self-attention cache sized for max_target_positions. Uses ctx's scratch arena.
  decoder_state start(exec_context& ctx, const tensor& encoder_out) const;

  // Runs `ids` at positions st.n_past.. (appending them to st) and returns host logits [rows.size(), vocab] of the
  // given rows (indices into ids, in output order). Throws autoglm::error when the positions would pass
  // max_target_positions or an id is outside the vocabulary. Resets ctx's scratch arena.
  std::vector<float> forward(exec_context& ctx, decoder_state& st, const std::vector<int32_t>& ids,
                             const std::vector<int32_t>& rows) const;

 private:
  config cfg_;
  decoder_weights w_;
};

}  // namespace autoglm::whisper
