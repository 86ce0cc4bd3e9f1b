#include "model/glm4v/glm4v_model.h"

#include "core/error.h"
#include "model/glm4v/rope_index.h"
#include "model/glm4v/vision.h"

namespace autoglm::glm4v {

glm4v_model::glm4v_model(const std::string& model_dir)
    : cfg_(config::load(model_dir)), store_(tensor_store::open_dir(model_dir)) {
  text_ = std::make_unique<text_model>(cfg_, *store_);
  if (cfg_.vision.present) vision_ = std::make_unique<vision_tower>(cfg_, *store_);
  info_.architecture = cfg_.architecture;
  info_.vocab_size = cfg_.text.vocab_size;
  info_.hidden_size = cfg_.text.hidden_size;
  info_.n_layers = cfg_.text.n_layers;
  info_.n_kv_heads = cfg_.text.n_kv_heads;
  info_.head_dim = cfg_.text.head_dim;
  info_.max_position_embeddings = cfg_.text.max_position_embeddings;
  info_.image_token_id = cfg_.image_token_id;
  info_.image_start_token_id = cfg_.image_start_token_id;
  info_.image_end_token_id = cfg_.image_end_token_id;
  info_.video_start_token_id = cfg_.video_start_token_id;
  info_.video_end_token_id = cfg_.video_end_token_id;
  info_.eos_token_ids = cfg_.eos_token_ids;
  info_.has_vision = cfg_.vision.present;
}

glm4v_model::~glm4v_model() = default;

std::vector<float> glm4v_model::encode_image(const vision_input& image) {
  if (vision_) return vision_->encode(image);
  throw invalid_request("this model has no vision tower; images are not supported");
}

prompt_positions glm4v_model::compute_positions(const std::vector<int32_t>& prompt,
                                                const std::vector<vision_input>& images) const {
  return compute_rope_positions(cfg_, prompt, images);
}

}  // namespace autoglm::glm4v
