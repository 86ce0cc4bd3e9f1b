// model/glm4v/glm4v.cpp: see glm4v.h.
#include "model/glm4v/glm4v.h"

#include <filesystem>

#include "core/error.h"
#include "formats/gguf_glm4v.h"
#include "formats/safetensors.h"
#include "model/glm4v/rope_index.h"

namespace autoglm::glm4v {

namespace {

model_info make_info(const config& cfg) {
  model_info info;
  info.architecture = cfg.architecture;
  info.vocab_size = cfg.text.vocab_size;
  info.hidden_size = cfg.text.hidden_size;
  info.n_layers = cfg.text.n_layers;
  info.n_kv_heads = cfg.text.n_kv_heads;
  info.head_dim = cfg.text.head_dim;
  info.max_position_embeddings = cfg.text.max_position_embeddings;
  info.image_token_id = cfg.image_token_id;
  info.image_start_token_id = cfg.image_start_token_id;
  info.image_end_token_id = cfg.image_end_token_id;
  info.video_start_token_id = cfg.video_start_token_id;
  info.video_end_token_id = cfg.video_end_token_id;
  info.eos_token_ids = cfg.eos_token_ids;
  info.has_vision = cfg.vision.present;
  return info;
}

}  // namespace

conditional_generation::conditional_generation(const config& cfg, const tensor_source& src, exec_context& ctx)
    : cfg_(cfg), info_(make_info(cfg)), text_(cfg.text, bind_text_weights(cfg, src, ctx)) {
  if (cfg_.vision.present) vision_.emplace(cfg_.vision, bind_vision_weights(cfg_, src, ctx));
}

std::unique_ptr<conditional_generation> conditional_generation::load(const std::string& model_dir,
                                                                     exec_context& ctx) {
  const config cfg = config::load(model_dir);
  // Weights in llama.cpp's GGUF layout instead of safetensors (a directory with *.gguf and no model.safetensors*):
  // the GGUF source serves the same checkpoint names and shapes (formats/gguf_glm4v.h).
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(model_dir) / "model.safetensors") &&
      !fs::exists(fs::path(model_dir) / "model.safetensors.index.json"))
    if (const std::unique_ptr<glm4v_gguf::source> gguf = glm4v_gguf::source::open_dir(model_dir))
      return std::make_unique<conditional_generation>(cfg, *gguf, ctx);
  // The prepared tensors keep their files mapped; the store itself is only needed while binding.
  const std::unique_ptr<tensor_store> store = tensor_store::open_dir(model_dir);
  return std::make_unique<conditional_generation>(cfg, *store, ctx);
}

kv_layout conditional_generation::kv_shape() const {
  return {cfg_.text.n_layers, cfg_.text.n_kv_heads, cfg_.text.head_dim};
}

void conditional_generation::forward(exec_context& ctx, const forward_batch& batch,
                                     const std::vector<paged_kv_layer>& kv, float* logits) const {
  text_.forward(ctx, batch, kv, logits);
}

tensor conditional_generation::encode_image(exec_context& ctx, const vision_input& image) const {
  if (!vision_) throw invalid_request("this model has no vision tower; images are not supported");
  return vision_->encode(ctx, image);
}

prompt_positions conditional_generation::compute_positions(const std::vector<int32_t>& prompt,
                                                           const std::vector<vision_input>& images) const {
  return compute_rope_positions(cfg_, prompt, images);
}

}  // namespace autoglm::glm4v
