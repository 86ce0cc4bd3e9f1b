// model/whisper/whisper.h: a Whisper checkpoint (transformers' WhisperForConditionalGeneration, any size) loaded
// for one device: the encoder and decoder written over ops, and the configuration the runtime decodes with. The
// model holds no per-request state: encode() returns the encoder states, decoder().start() makes a request's
// decoder_state, and decoder().forward() runs tokens through it. Decoding rules (prompt layout, suppression,
// timestamps, no-speech) are the runtime's (runtime/whisper_decoding.h).
#pragma once

#include <memory>
#include <string>

#include "model/whisper/config.h"
#include "model/whisper/decoder.h"
#include "model/whisper/encoder.h"
#include "ops/context.h"

namespace autoglm::whisper {

class model {
 public:
  // Reads DIR/config.json, generation_config.json and the safetensors weights, prepared for ctx's device. Throws
  // autoglm::error naming the file and the problem (missing files, not a Whisper checkpoint, a tensor missing or
  // mis-shaped, a dtype the device cannot run).
  static std::unique_ptr<model> load(const std::string& model_dir, exec_context& ctx);

  const config& cfg() const { return cfg_; }
  const generation_config& gen() const { return gen_; }
  const whisper::encoder& encoder() const { return *encoder_; }
  const whisper::decoder& decoder() const { return *decoder_; }

 private:
  model(config cfg, generation_config gen, std::unique_ptr<whisper::encoder> enc, std::unique_ptr<whisper::decoder> dec)
      : cfg_(std::move(cfg)), gen_(std::move(gen)), encoder_(std::move(enc)), decoder_(std::move(dec)) {}

  config cfg_;
  generation_config gen_;
  std::unique_ptr<whisper::encoder> encoder_;
  std::unique_ptr<whisper::decoder> decoder_;
};

}  // namespace autoglm::whisper
