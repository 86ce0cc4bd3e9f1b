// model/whisper/encoder.h: Whisper's audio encoder over ops: log-mel [N, 2S] -> conv1 (k3 p1) + GELU -> conv2 (k3 p1
// stride 2) + GELU -> + positions -> encoder_layers x [LayerNorm -> bidirectional self-attention -> residual;
// LayerNorm -> fc1 -> GELU -> fc2 -> residual] -> LayerNorm. The convolutions are IM2COL_1D + LINEAR; attention
// is ATTENTION_DENSE over one segment (the whole window).
#pragma once

#include <utility>

#include "core/tensor.h"
#include "model/whisper/config.h"
#include "model/whisper/weights.h"
#include "ops/context.h"

namespace autoglm::whisper {

class encoder {
 public:
  encoder(const config& cfg, encoder_weights w) : cfg_(cfg), w_(std::move(w)) {}

  // features: host F32 [num_mel_bins, 2*max_source_positions], row-major (one mel bin per row, as
  // WhisperFeatureExtractor and whisper_log_mel lay them out). Returns the encoder states [max_source_positions,
  // d_model] F32, owned, on ctx's device. Resets ctx's scratch arena; named intermediates go to its dump callback.
  tensor encode(exec_context& ctx, const float* features) const;

 private:
  config cfg_;
  encoder_weights w_;
};

}  // namespace autoglm::whisper
