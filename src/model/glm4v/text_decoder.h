// model/glm4v/text_decoder.h: the GLM-4.1V text decoder (spec section 2) written once over ops: token embedding
// (image rows copied over from the batch's embedding spans), n_layers x [RMSNorm -> q/k/v (+bias) -> M-RoPE ->
// paged KV store + causal GQA attention -> o_proj -> sandwich RMSNorm -> residual; RMSNorm -> gate_up -> SiLU*up ->
// down -> sandwich RMSNorm -> residual], final RMSNorm and lm_head on the rows whose logits are wanted.
// Stateless: the KV cache, block tables and positions come from the runtime in each forward_batch.
//
// Tensor parallelism (a text_shard of more than one rank): the rank holds its heads of q/k/v and its columns of
// gate_up (column-parallel: no communication), o_proj and down_proj over those inputs (row-parallel: one
// all-reduce of the [n, H] partial sums through ctx's communicator before each sandwich norm), and its share of
// lm_head's vocabulary rows, gathered into the full logits on every rank. Its KV cache holds its KV heads only.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "core/kernel_registry.h"
#include "model/glm4v/config.h"
#include "model/glm4v/weights.h"
#include "model/model.h"
#include "ops/context.h"

namespace autoglm::glm4v {

class text_decoder {
 public:
  // weights: bound and prepared for the device of the contexts forward will run on (bind_text_weights).
  // shard: which part of the model `weights` holds (bind_text_weights with the same shard).
  text_decoder(const text_config& cfg, text_weights weights, const text_shard& shard);

  // kv: one paged layer per decoder layer. Returns the logits [batch.logits_rows.size(), vocab] on ctx's device
  // in its scratch arena (reset here; empty when no row was asked for). Uses ctx's dump callback; safe to run
  // concurrently with other calls on other contexts.
  tensor forward(exec_context& ctx, const forward_batch& batch, const std::vector<paged_kv_layer>& kv) const;
  // The same in two phases (model::prepare_step / compute_step): the inputs uploaded (arena reset first), then the
  // device work alone. context_bucket > 0 sizes the block tables and attention's context bound for that many
  // positions, so compute's kernel arguments depend only on the batch's shape.
  std::unique_ptr<prepared_step> prepare(exec_context& ctx, const forward_batch& batch,
                                         const std::vector<paged_kv_layer>& kv, int32_t context_bucket) const;
  tensor compute(exec_context& ctx, const prepared_step& step, const std::vector<paged_kv_layer>& kv) const;

  size_t weight_bytes_per_token() const { return decode_weight_bytes(w_); }
  size_t prefault_weights() const { return prefault_decode_weights(w_); }
  const text_config& cfg() const { return cfg_; }
  const text_shard& shard() const { return shard_; }

 private:
  struct activations;
  struct step_inputs;
  void upload_inputs(exec_context& ctx, const forward_batch& batch, const std::vector<paged_kv_layer>& kv,
                     int32_t context_bucket, step_inputs& in) const;
  void attention_block(exec_context& ctx, int32_t il, const step_inputs& in, const paged_kv_layer& kv,
                       activations& a) const;
  void mlp_block(exec_context& ctx, int32_t il, activations& a) const;

  text_config cfg_;
  text_weights w_;
  text_shard shard_;
  bool any_stacked_qkv_ = false;  // some layer's q/k/v are one linear (the forward then needs the stacked output)
};

}  // namespace autoglm::glm4v
