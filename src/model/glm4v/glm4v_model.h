// model/glm4v/glm4v_model.h: Glm4vForConditionalGeneration as a model_runner: the text decoder, the vision
// tower and the M-RoPE position rules over one memory-mapped checkpoint.
#pragma once

#include <memory>
#include <string>

#include "formats/safetensors.h"
#include "model/glm4v/config.h"
#include "model/glm4v/text_model.h"
#include "model/model_runner.h"

namespace autoglm::glm4v {

class vision_tower;

class glm4v_model : public model_runner {
 public:
  explicit glm4v_model(const std::string& model_dir);
  ~glm4v_model() override;

  const model_info& info() const override { return info_; }
  void allocate_kv_cache(int32_t n_blocks, int32_t block_size) override { text_->allocate_kv_cache(n_blocks, block_size); }
  size_t kv_bytes_per_token() const override { return text_->kv_bytes_per_token(); }
  void forward(const forward_batch& batch, float* logits) override { text_->forward(batch, logits); }
  std::vector<float> encode_image(const vision_input& image) override;
  prompt_positions compute_positions(const std::vector<int32_t>& prompt,
                                     const std::vector<vision_input>& images) const override;

  const config& cfg() const { return cfg_; }
  text_model& text() { return *text_; }
  const tensor_store& store() const { return *store_; }

 private:
  config cfg_;
  std::unique_ptr<tensor_store> store_;
  std::unique_ptr<text_model> text_;
  std::unique_ptr<vision_tower> vision_;
  model_info info_;
};

}  // namespace autoglm::glm4v
