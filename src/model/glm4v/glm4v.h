// model/glm4v/glm4v.h: Glm4vForConditionalGeneration as a `model` (model/model.h): the text decoder, the vision
// tower and the M-RoPE position rules over one checkpoint, weights prepared for one device at load. Holds no
// per-sequence state: forward and encode_image are const and run concurrently on different exec_contexts.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "formats/tensor_source.h"
#include "model/glm4v/config.h"
#include "model/glm4v/text_decoder.h"
#include "model/glm4v/vision_encoder.h"
#include "model/model.h"

namespace autoglm::glm4v {

class conditional_generation final : public model {
 public:
  // Binds every tensor the config names from `src` and prepares it for ctx's device. Throws autoglm::error for a
  // missing or mis-shaped tensor, or a dtype the device has no kernel for.
  // shard: the part of the decoder this instance holds (shard_text; the whole model by default).
  // fuse_qkv: bind_text_weights'.
  conditional_generation(const config& cfg, const tensor_source& src, exec_context& ctx, const text_shard& shard,
                         bool fuse_qkv);
  conditional_generation(const config& cfg, const tensor_source& src, exec_context& ctx)
      : conditional_generation(cfg, src, ctx, shard_text(cfg.text, 0, 1), false) {}
  // Opens DIR (config.json, generation_config.json, safetensors, or llama.cpp GGUF files when DIR has no
  // safetensors) and loads it for ctx's device, quantizing the safetensors' matrices as `opt` asks.
  static std::unique_ptr<conditional_generation> load(const std::string& model_dir, exec_context& ctx,
                                                      const model_load_options& opt = {});

  const model_info& info() const override { return info_; }
  kv_layout kv_shape() const override;
  tensor forward_logits(exec_context& ctx, const forward_batch& batch,
                        const std::vector<paged_kv_layer>& kv) const override;
  std::unique_ptr<prepared_step> prepare_step(exec_context& ctx, const forward_batch& batch,
                                              const std::vector<paged_kv_layer>& kv,
                                              int32_t context_bucket) const override;
  tensor compute_step(exec_context& ctx, const prepared_step& step,
                      const std::vector<paged_kv_layer>& kv) const override;
  tensor encode_image(exec_context& ctx, const vision_input& image) const override;
  prompt_positions compute_positions(const std::vector<int32_t>& prompt,
                                     const std::vector<vision_input>& images) const override;
  size_t weight_bytes_per_token() const override { return text_.weight_bytes_per_token(); }

  const config& cfg() const { return cfg_; }

 private:
  config cfg_;
  model_info info_;
  text_decoder text_;
  std::optional<vision_encoder> vision_;
};

}  // namespace autoglm::glm4v
