// autoglm/speech.h: speech in - transcription of 16 kHz mono audio with a Whisper checkpoint in Hugging Face's layout
// (WhisperForConditionalGeneration, any size: config.json, generation_config.json, model.safetensors,
// preprocessor_config.json, tokenizer.json). The server's /v1/audio/transcriptions and the CLI use this.
//
// Decoding follows transformers' WhisperGenerationMixin / openai-whisper: the prompt <|startofprev|> previous text,
// <|startoftranscript|> <|lang|> <|transcribe|> (or <|translate|>) [<|notimestamps|>]; suppress_tokens and
// begin_suppress_tokens from generation_config.json; greedy at temperature 0; timestamps with the timestamp-token
// rules. Audio longer than 30 s is cut into consecutive 30 s windows (with timestamps, the next window starts after
// the last complete segment, as openai-whisper does). A window whose <|nospeech|> probability is above 0.6 while
// its average log-probability is below -1 is silence: it yields no segment (the hallucination guard of both).
// Not done: temperature fallback on compression ratio, conditioning on the previous window's text, word timestamps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace autoglm {

struct transcription_options {
  std::string language;       // ISO code ("en", "zh"); empty: detect from the first window (language-id step)
  std::string prompt;         // previous text, fed after <|startofprev|> (its last max_target_positions/2 - 1 tokens)
  float temperature = 0.0f;   // 0: greedy; > 0: sampling from softmax(logits / temperature), seeded by `seed`
  bool timestamps = false;    // segment timestamps (for verbose_json / srt / vtt)
  bool translate = false;     // the translate task (speech -> English text) instead of transcribe
  uint64_t seed = 0;          // the sampler's seed when temperature > 0 (same seed, same text)
  float no_speech_threshold = 0.6f;  // the silence guard (see above); > 1 turns it off
  float logprob_threshold = -1.0f;
};

struct transcription_segment {
  int32_t id = 0;
  double start = 0, end = 0;     // seconds; without timestamps, one segment per 30 s window
  std::string text;              // as decoded (Whisper's text usually starts with a space)
  std::vector<int32_t> tokens;   // the segment's tokens (timestamp tokens included when timestamps is on)
  float avg_logprob = 0, no_speech_prob = 0;  // of the window the segment came from
};

struct transcription {
  std::string text;      // every segment's text, joined, without leading / trailing whitespace
  std::string language;  // ISO code, given or detected ("en" for an English-only model)
  double duration_s = 0;
  std::vector<transcription_segment> segments;
};

class speech_recognizer {
 public:
  struct options {
    std::string model_dir;
    std::string device = "cpu";  // "cpu" or "cuda:N"
    int n_threads = 0;           // CPU compute threads (0: all cores)
  };
  // Throws autoglm::error naming the problem (missing files, not a Whisper checkpoint, bad device).
  static std::unique_ptr<speech_recognizer> load(const options& opt);
  virtual ~speech_recognizer() = default;
  // pcm: 16 kHz mono in [-1, 1] (media/audio.h decodes files to this). Longer than 30 s: consecutive windows.
  // Thread-safe (calls are serialized inside). Throws autoglm::invalid_request for options the model cannot take
  // (an unknown language, translate on an English-only model, a prompt without <|startofprev|>).
  virtual transcription transcribe(const std::vector<float>& pcm, const transcription_options& opt) = 0;
  virtual std::string model_name() const = 0;  // directory name, as /v1/models shows models
};

}  // namespace autoglm
