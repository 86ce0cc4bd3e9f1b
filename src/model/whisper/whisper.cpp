// model/whisper/whisper.cpp: loading a Whisper checkpoint (see whisper.h).
#include "model/whisper/whisper.h"

#include <filesystem>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/whisper/weights.h"

namespace autoglm::whisper {

std::unique_ptr<model> model::load(const std::string& model_dir, exec_context& ctx) {
  if (!std::filesystem::is_directory(model_dir)) throw error(model_dir + ": model directory not found");
  config cfg = config::load(model_dir);
  generation_config gen = generation_config::load(model_dir, cfg.vocab_size);
  if (gen.max_length > cfg.max_target_positions) gen.max_length = cfg.max_target_positions;
  const std::unique_ptr<tensor_store> store = tensor_store::open_dir(model_dir);
  auto enc = std::make_unique<whisper::encoder>(cfg, bind_encoder_weights(cfg, *store, ctx));
  auto dec = std::make_unique<whisper::decoder>(cfg, bind_decoder_weights(cfg, *store, ctx));
  return std::unique_ptr<model>(new model(std::move(cfg), std::move(gen), std::move(enc), std::move(dec)));
}

}  // namespace autoglm::whisper
