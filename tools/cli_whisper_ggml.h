// tools/cli_whisper_ggml.h: whisper.cpp's own model file (the "ggml" magic format its
// models/convert-h5-to-ggml.py writes from a Hugging Face checkpoint), for the speech peer benchmark
// (bench/peer/asr_peer.mjs): `autoglm random-whisper --ggml FILE` writes the same random weights there, so whisper.cpp
// runs a model of the same dimensions as autoglm. Layout, all little-endian:
//   u32 magic 0x67676d6c; i32 n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx,
//   n_text_state, n_text_head, n_text_layer, n_mels, ftype (1: mostly F16)
//   i32 n_mels, n_bins; f32 mel filters [n_mels, n_bins]
//   i32 n_words; per word: u32 length, bytes   (whisper.cpp names the special tokens past them itself)
//   per tensor: i32 n_dims, name length, type (0 F32, 1 F16); i32 ne[n_dims] (innermost first: torch's shape
//   reversed); name; data
// Tensor names are openai-whisper's (encoder.blocks.0.attn.query.weight ...); 1-D tensors, the convolution biases
// (stored as [1, D]) and the positional embeddings are F32, everything else F16 (what whisper.cpp's loader expects
// of an F16 model).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace autoglm::cli {

struct whisper_ggml_hparams {
  int32_t n_vocab = 0, n_audio_ctx = 0, n_audio_state = 0, n_audio_head = 0, n_audio_layer = 0;
  int32_t n_text_ctx = 0, n_text_state = 0, n_text_head = 0, n_text_layer = 0, n_mels = 0;
};

class whisper_ggml_writer {
 public:
  // mel_filters: [hp.n_mels, n_bins] row-major; words: the regular tokens' bytes, by id. Throws autoglm::error when
  // the file cannot be written.
  whisper_ggml_writer(const std::string& path, const whisper_ggml_hparams& hp, const std::vector<float>& mel_filters,
                      int32_t n_bins, const std::vector<std::string>& words);
  // One tensor under its Hugging Face name (mapped to openai-whisper's), torch shape, values in torch order.
  void add(const std::string& hf_name, const std::vector<int64_t>& shape, const float* values);
  // Flushes and checks the stream; returns the bytes written.
  uint64_t finish();

 private:
  std::string path_;
  std::ofstream out_;
  std::vector<uint16_t> half_;
};

// model.encoder.layers.3.self_attn.q_proj.weight -> encoder.blocks.3.attn.query.weight (convert-h5-to-ggml's map).
std::string whisper_ggml_name(const std::string& hf_name);

}  // namespace autoglm::cli
