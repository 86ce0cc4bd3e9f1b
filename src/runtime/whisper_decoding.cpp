// runtime/whisper_decoding.cpp: Whisper's decoding rules (see whisper_decoding.h).
#include "runtime/whisper_decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace autoglm::whisper {

namespace {

constexpr float k_neg_inf = -std::numeric_limits<float>::infinity();

int32_t token_or(const tokenizer* tok, const char* text, int32_t fallback) {
  if (!tok) return fallback;
  const auto id = tok->token_to_id(text);
  return id ? *id : fallback;
}

// log(sum(exp(x))) over finite and -inf values, in double.
double log_sum_exp(const float* x, int64_t n) {
  float mx = k_neg_inf;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == k_neg_inf) return -std::numeric_limits<double>::infinity();
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  return double(mx) + std::log(s);
}

}  // namespace

special_tokens special_tokens::from(const generation_config& gen, const tokenizer* tok, int32_t vocab_size) {
  special_tokens sp;
  sp.vocab_size = vocab_size;
  sp.sot = gen.decoder_start_token_id;
  sp.eot = gen.eos_token_id;
  sp.multilingual = gen.is_multilingual;
  if (auto it = gen.task_to_id.find("transcribe"); it != gen.task_to_id.end()) sp.transcribe = it->second;
  if (auto it = gen.task_to_id.find("translate"); it != gen.task_to_id.end()) sp.translate = it->second;
  sp.notimestamps = gen.no_timestamps_token_id;
  sp.timestamp_begin = gen.timestamp_begin();
  if (sp.timestamp_begin >= vocab_size) sp.timestamp_begin = -1;
  sp.startofprev = gen.prev_sot_token_id >= 0 ? gen.prev_sot_token_id : token_or(tok, "<|startofprev|>", -1);
  // <|nospeech|> (named <|nocaptions|> in older tokenizers) sits right before <|notimestamps|> in every release.
  sp.nospeech = token_or(tok, "<|nospeech|>", token_or(tok, "<|nocaptions|>", -1));
  if (sp.nospeech < 0 && sp.notimestamps > 0) sp.nospeech = sp.notimestamps - 1;
  for (const auto& [name, id] : gen.lang_to_id)
    if (name.size() > 4 && name.rfind("<|", 0) == 0 && name.compare(name.size() - 2, 2, "|>") == 0)
      sp.languages[name.substr(2, name.size() - 4)] = id;
  return sp;
}

decoder_prefix make_prefix(const special_tokens& sp, const window_options& opt) {
  decoder_prefix p;
  if (!opt.prompt.empty()) {
    if (sp.startofprev < 0) throw error("this Whisper model has no <|startofprev|> token: it cannot take a prompt");
    p.ids.push_back(sp.startofprev);
    p.ids.insert(p.ids.end(), opt.prompt.begin(), opt.prompt.end());
  }
  p.sot_index = int32_t(p.ids.size());
  p.ids.push_back(sp.sot);
  if (sp.multilingual) {
    if (opt.language_token >= 0) p.ids.push_back(opt.language_token);
    const int32_t task = opt.translate ? sp.translate : sp.transcribe;
    if (task < 0) throw error(std::string("this Whisper model has no ") + (opt.translate ? "translate" : "transcribe") +
                              " task token");
    p.ids.push_back(task);
  } else if (opt.translate) {
    throw error("this Whisper model is English-only: it cannot translate");
  }
  if (!opt.timestamps && sp.notimestamps >= 0) p.ids.push_back(sp.notimestamps);
  return p;
}

void apply_logit_rules(const special_tokens& sp, const generation_config& gen, bool timestamps,
                       const std::vector<int32_t>& generated, float* logits) {
  const int32_t V = sp.vocab_size;
  if (generated.empty())
    for (int32_t id : gen.begin_suppress_tokens) logits[id] = k_neg_inf;
  for (int32_t id : gen.suppress_tokens) logits[id] = k_neg_inf;
  if (!timestamps || sp.timestamp_begin < 0) return;

  const int32_t tb = sp.timestamp_begin;
  logits[sp.notimestamps] = k_neg_inf;
  const size_t n = generated.size();
  const bool last_ts = n >= 1 && generated[n - 1] >= tb;
  const bool penultimate_ts = n < 2 || generated[n - 2] >= tb;
  if (last_ts) {
    if (penultimate_ts) std::fill(logits + tb, logits + V, k_neg_inf);  // a pair just closed: text next
    else std::fill(logits, logits + sp.eot, k_neg_inf);                 // a timestamp or <|endoftext|> next
  }
  int32_t last_timestamp = -1;
  for (int32_t id : generated)
    if (id >= tb) last_timestamp = id;
  if (last_timestamp >= 0) {
    // Never decreasing; equal only to close the pair just opened.
    const int32_t first_allowed = (last_ts && !penultimate_ts) ? last_timestamp : last_timestamp + 1;
    std::fill(logits + tb, logits + std::min(first_allowed, V), k_neg_inf);
  }
  if (generated.empty()) {
    std::fill(logits, logits + tb, k_neg_inf);
    const int64_t last_allowed = int64_t(tb) + gen.max_initial_timestamp_index;
    if (last_allowed + 1 < V) std::fill(logits + last_allowed + 1, logits + V, k_neg_inf);
  }
  // Timestamps only, when their total probability beats every single text token's.
  const double lse_all = log_sum_exp(logits, V);
  const double ts_logprob = log_sum_exp(logits + tb, V - tb) - lse_all;
  float max_text = k_neg_inf;
  for (int32_t i = 0; i < tb; ++i) max_text = std::max(max_text, logits[i]);
  if (ts_logprob > double(max_text) - lse_all) std::fill(logits, logits + tb, k_neg_inf);
}

std::vector<int32_t> truncate_prompt(std::vector<int32_t> prompt, int32_t max_target_positions) {
  const size_t keep = size_t(std::max(0, max_target_positions / 2 - 1));
  if (prompt.size() > keep) prompt.erase(prompt.begin(), prompt.end() - long(keep));
  return prompt;
}

window_result decode_window(const step_fn& step, const special_tokens& sp, const generation_config& gen,
                            const window_options& opt, int32_t max_positions) {
  const decoder_prefix prefix = make_prefix(sp, opt);
  const int32_t V = sp.vocab_size;
  // transformers: max_length = min(generation max_length + the prefix beyond its first token, max_target_positions).
  const int64_t n_initial = std::min<int64_t>(max_positions / 2 - 1, int64_t(prefix.ids.size()) - 1);
  const int64_t limit = std::min<int64_t>(int64_t(gen.max_length) + n_initial, max_positions);
  if (int64_t(prefix.ids.size()) >= limit)
    throw error("whisper: the prompt and start tokens (" + std::to_string(prefix.ids.size()) +
                ") leave no room under the decoder's " + std::to_string(limit) + " positions");

  window_result r;
  const int32_t last = int32_t(prefix.ids.size()) - 1;
  std::vector<int32_t> rows = {last};
  if (prefix.sot_index != last) rows.insert(rows.begin(), prefix.sot_index);
  std::vector<float> out = step(prefix.ids, rows);
  AG_CHECK(out.size() == rows.size() * size_t(V), "whisper step: logits size");
  if (sp.nospeech >= 0) {  // softmax of the raw logits at <|startoftranscript|>
    const float* at_sot = out.data();
    r.no_speech_prob = float(std::exp(double(at_sot[sp.nospeech]) - log_sum_exp(at_sot, V)));
  }
  std::vector<float> logits(out.end() - V, out.end());
  std::mt19937_64 rng(opt.seed);
  int64_t length = int64_t(prefix.ids.size());
  while (true) {
    apply_logit_rules(sp, gen, opt.timestamps, r.tokens, logits.data());
    int32_t next;
    if (opt.temperature <= 0.0f) {
      next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    } else {
      std::vector<double> w(static_cast<size_t>(V));
      const float mx = *std::max_element(logits.begin(), logits.end());
      for (int32_t i = 0; i < V; ++i) w[size_t(i)] = std::exp((double(logits[size_t(i)]) - mx) / opt.temperature);
      next = int32_t(std::discrete_distribution<int32_t>(w.begin(), w.end())(rng));
    }
    const double lp = double(logits[size_t(next)]) - log_sum_exp(logits.data(), V);
    r.sum_logprob += std::isfinite(lp) ? lp : 0.0;
    ++length;
    if (next == sp.eot) {
      r.ended = true;
      break;
    }
    r.tokens.push_back(next);
    if (length >= limit) break;
    logits = step({next}, {0});
  }
  r.avg_logprob = r.sum_logprob / double(r.tokens.size() + 1);
  return r;
}

int32_t detect_language(const step_fn& step, const special_tokens& sp) {
  if (sp.languages.empty()) throw error("this Whisper model has no language tokens to detect a language with");
  const std::vector<float> logits = step({sp.sot}, {0});
  int32_t best = -1;
  for (const auto& [code, id] : sp.languages)
    if (best < 0 || logits[size_t(id)] > logits[size_t(best)] ||
        (logits[size_t(id)] == logits[size_t(best)] && id < best))
      best = id;
  return best;
}

window_segments split_timestamped(const special_tokens& sp, const std::vector<int32_t>& tokens, double offset_s,
                                  int64_t window_frames) {
  window_segments out;
  const int32_t tb = sp.timestamp_begin;
  auto time_of = [&](int32_t id) { return offset_s + double(id - tb) * k_time_per_timestamp; };
  const size_t n = tokens.size();
  std::vector<size_t> cuts;  // a segment ends after each pair of consecutive timestamps
  for (size_t i = 1; i < n; ++i)
    if (sp.is_timestamp(tokens[i - 1]) && sp.is_timestamp(tokens[i])) cuts.push_back(i);
  const bool single_ending = n >= 2 && !sp.is_timestamp(tokens[n - 2]) && sp.is_timestamp(tokens[n - 1]);
  out.advance_frames = window_frames;
  if (!cuts.empty()) {
    if (single_ending) cuts.push_back(n);
    size_t begin = 0;
    for (size_t end : cuts) {
      timed_segment s;
      s.tokens.assign(tokens.begin() + long(begin), tokens.begin() + long(end));
      if (!s.tokens.empty() && sp.is_timestamp(s.tokens.front()) && sp.is_timestamp(s.tokens.back())) {
        s.start = time_of(s.tokens.front());
        s.end = time_of(s.tokens.back());
        out.segments.push_back(std::move(s));
      }
      begin = end;
    }
    if (!single_ending) {
      // The next window starts at the last complete segment's end (2 mel frames per timestamp step).
      const int64_t last_pos = tokens[begin - 1] - tb;
      if (last_pos > 0) out.advance_frames = std::min<int64_t>(window_frames, 2 * last_pos);
    }
  } else {
    double duration = double(window_frames) * 0.01;
    int32_t last = -1;
    for (int32_t id : tokens)
      if (sp.is_timestamp(id)) last = id;
    if (last >= 0 && last != tb) duration = double(last - tb) * k_time_per_timestamp;
    timed_segment s;
    s.start = offset_s;
    s.end = offset_s + duration;
    s.tokens = tokens;
    out.segments.push_back(std::move(s));
  }
  return out;
}

}  // namespace autoglm::whisper
