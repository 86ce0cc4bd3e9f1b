// runtime/whisper_decoding.h: how a Whisper window is decoded, as transformers' WhisperGenerationMixin and
// openai-whisper do it, written against a step function so it is tested without a model:
//  - the prompt: [<|startofprev|> previous text] <|startoftranscript|> [<|lang|> <|task|>] [<|notimestamps|>];
//  - logits rules, in transformers' order: begin_suppress_tokens at the first generated token, suppress_tokens,
//    then (timestamps mode) WhisperTimeStampLogitsProcessor's rules: <|notimestamps|> never; timestamps in pairs
//    except right before <|endoftext|>; never decreasing; the first token a timestamp of at most
//    max_initial_timestamp_index; only timestamps when their total probability beats every text token;
//  - greedy at temperature 0 (first maximum on ties, as torch.argmax), else sampling from softmax(logits / T);
//  - stop at <|endoftext|> or when the sequence reaches the position limit (transformers' max_length rule);
//  - sum / average log-probability of the generated tokens (openai: the <|endoftext|> counts, the average divides
//    by the text tokens + 1) and the <|nospeech|> probability of the raw logits at <|startoftranscript|>;
//  - language identification from the logits after <|startoftranscript|> alone (language tokens only);
//  - cutting a window's tokens into timestamped segments and finding where the next window starts (openai's
//    transcribe loop: after the last complete segment, or the whole window when it ends on a single timestamp).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/whisper/config.h"

namespace autoglm {
class tokenizer;
}

namespace autoglm::whisper {

struct special_tokens {
  int32_t vocab_size = 0;
  int32_t sot = -1, eot = -1;
  int32_t transcribe = -1, translate = -1;
  int32_t startofprev = -1;
  int32_t nospeech = -1;
  int32_t notimestamps = -1;    // -1: the model has no timestamp tokens
  int32_t timestamp_begin = -1; // <|0.00|>; timestamp i is timestamp_begin + i, i * 0.02 s
  std::map<std::string, int32_t> languages;  // ISO code ("en") -> token id
  bool multilingual = true;

  // From generation_config.json, with the tokenizer for the tokens it does not list (<|startofprev|>,
  // <|nospeech|> / <|nocaptions|>); tok may be null (then: prev_sot_token_id, and <|notimestamps|> - 1).
  static special_tokens from(const generation_config& gen, const tokenizer* tok, int32_t vocab_size);
  bool is_timestamp(int32_t id) const { return timestamp_begin >= 0 && id >= timestamp_begin; }
};

constexpr double k_time_per_timestamp = 0.02;  // seconds per timestamp step (2 mel frames of 10 ms)

struct window_options {
  int32_t language_token = -1;  // -1: no language token (an English-only model)
  bool translate = false;
  bool timestamps = false;
  float temperature = 0.0f;
  uint64_t seed = 0;
  std::vector<int32_t> prompt;  // previous-text tokens (without <|startofprev|>), already truncated
};

// The decoder prefix and the index of <|startoftranscript|> in it.
struct decoder_prefix {
  std::vector<int32_t> ids;
  int32_t sot_index = 0;
};
decoder_prefix make_prefix(const special_tokens& sp, const window_options& opt);

// Runs ids at the next positions and returns the logits [rows.size(), vocab] of the given rows (indices into ids).
using step_fn = std::function<std::vector<float>(const std::vector<int32_t>& ids, const std::vector<int32_t>& rows)>;

// Applies the rules above to one logits row, given the tokens generated so far in this window.
void apply_logit_rules(const special_tokens& sp, const generation_config& gen, bool timestamps,
                       const std::vector<int32_t>& generated, float* logits);

struct window_result {
  std::vector<int32_t> tokens;  // generated, <|endoftext|> excluded
  bool ended = false;           // <|endoftext|> was generated (not the position limit)
  double sum_logprob = 0, avg_logprob = 0;
  float no_speech_prob = 0;
};

// Decodes one window: the prefix, then one token per step. max_positions: the decoder's max_target_positions.
window_result decode_window(const step_fn& step, const special_tokens& sp, const generation_config& gen,
                            const window_options& opt, int32_t max_positions);

// The language token the logits after <|startoftranscript|> favour (argmax over the language tokens).
int32_t detect_language(const step_fn& step, const special_tokens& sp);

// Previous-text tokens as they go after <|startofprev|>: the last max_target_positions / 2 - 1 of them.
std::vector<int32_t> truncate_prompt(std::vector<int32_t> prompt, int32_t max_target_positions);

struct timed_segment {
  double start = 0, end = 0;      // seconds from the start of the audio
  std::vector<int32_t> tokens;    // the segment's tokens, timestamps included
};
struct window_segments {
  std::vector<timed_segment> segments;
  int64_t advance_frames = 0;  // mel frames (10 ms) to the next window's start (> 0)
};
// Cuts a timestamped window's tokens into segments (openai's rule). offset_s: the window's start; window_frames:
// the mel frames of audio the window holds (at most 3000).
window_segments split_timestamped(const special_tokens& sp, const std::vector<int32_t>& tokens, double offset_s,
                                  int64_t window_frames);

}  // namespace autoglm::whisper
