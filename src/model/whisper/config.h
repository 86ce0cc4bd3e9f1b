// model/whisper/config.h: a Whisper checkpoint's configuration (any size, tiny to large-v3): the network from
// config.json (transformers' WhisperConfig) and the decoding rules from generation_config.json (special token ids,
// languages, tasks, suppress lists). Every size and id is read from the files and range-checked; nothing about a
// particular model size is hard-coded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace autoglm::whisper {

struct config {
  std::string architecture;           // "WhisperForConditionalGeneration"
  int32_t vocab_size = 0;             // 51865 (multilingual v1/v2), 51864 (English-only), 51866 (large-v3)
  int32_t d_model = 0;
  int32_t encoder_layers = 0, encoder_heads = 0, encoder_ffn_dim = 0;
  int32_t decoder_layers = 0, decoder_heads = 0, decoder_ffn_dim = 0;
  int32_t num_mel_bins = 0;           // 80, or 128 (large-v3)
  int32_t max_source_positions = 0;   // encoder states per window (1500 = 30 s after the stride-2 convolution)
  int32_t max_target_positions = 0;   // decoder positions (448)
  bool scale_embedding = false;       // token embeddings times sqrt(d_model)
  float layer_norm_eps = 1e-5f;       // nn.LayerNorm's default (WhisperConfig has no key for it)

  int32_t head_dim() const { return d_model / decoder_heads; }
  int32_t encoder_head_dim() const { return d_model / encoder_heads; }
  // Mel frames per window: the convolutions halve the time axis once.
  int32_t n_frames() const { return 2 * max_source_positions; }

  // Reads DIR/config.json; throws autoglm::error naming the file and the key (and saying when the directory does
  // not hold a Whisper checkpoint).
  static config load(const std::string& model_dir);
};

// generation_config.json: what transformers' WhisperGenerationMixin and openai-whisper decode with.
struct generation_config {
  int32_t decoder_start_token_id = -1;  // <|startoftranscript|>
  int32_t eos_token_id = -1;            // <|endoftext|>
  int32_t no_timestamps_token_id = -1;  // <|notimestamps|>; the timestamp tokens follow it (-1: none)
  int32_t prev_sot_token_id = -1;       // <|startofprev|> (-1: taken from the tokenizer)
  bool is_multilingual = true;          // false: English-only, no language or task tokens
  std::map<std::string, int32_t> lang_to_id;  // "<|en|>" -> 50259
  std::map<std::string, int32_t> task_to_id;  // "transcribe" -> 50359, "translate" -> 50358
  std::vector<int32_t> suppress_tokens;        // never sampled
  std::vector<int32_t> begin_suppress_tokens;  // not sampled as the first token (" " and <|endoftext|>)
  int32_t max_initial_timestamp_index = 50;    // the first timestamp is at most 1.00 s
  int32_t max_length = 448;                    // decoder positions, prompt included

  int32_t timestamp_begin() const { return no_timestamps_token_id < 0 ? -1 : no_timestamps_token_id + 1; }
  // <|xx|>'s id for an ISO code ("en"), or -1 when the model has no such language.
  int32_t language_token(const std::string& code) const;

  // Reads DIR/generation_config.json (required: Whisper's special tokens live there); ids are checked against
  // `vocab_size`. Throws autoglm::error naming the file and the key.
  static generation_config load(const std::string& model_dir, int32_t vocab_size);
};

}  // namespace autoglm::whisper
