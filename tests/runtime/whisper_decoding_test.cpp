// tests/runtime/whisper_decoding_test.cpp: Whisper's decoding rules (runtime/whisper_decoding.h) against scripted
// logits, no model: the prompt layout, suppression at the first step and always, every timestamp rule, the stop
// conditions and position limit, log-probabilities and the no-speech probability, language identification, and
// cutting timestamped windows into segments (with where the next window starts).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/whisper/config.h"
#include "runtime/whisper_decoding.h"

using namespace autoglm;
using namespace autoglm::whisper;

namespace {

constexpr int32_t V = 51865, EOT = 50257, SOT = 50258, EN = 50259, DE = 50261, TRANSLATE = 50358,
                  TRANSCRIBE = 50359, PREV = 50361, NOSPEECH = 50362, NOTS = 50363, TS0 = 50364;

generation_config gen_config() {
  return generation_config::load(std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/whisper", V);
}

special_tokens specials() { return special_tokens::from(gen_config(), nullptr, V); }

// A step function whose logits favour a scripted token per call (the first call's last row favours script[0]),
// recording what it was fed.
struct scripted {
  std::vector<int32_t> script;
  std::vector<std::vector<int32_t>> fed;
  float sot_nospeech = 0.0f;  // raw logit of <|nospeech|> at the <|startoftranscript|> row
  std::vector<float> row(int32_t favour) const {
    std::vector<float> l(static_cast<size_t>(V), 0.0f);
    l[size_t(favour)] = 10.0f;
    return l;
  }
  step_fn fn() {
    return [this](const std::vector<int32_t>& ids, const std::vector<int32_t>& rows) {
      fed.push_back(ids);
      std::vector<float> out;
      for (size_t r = 0; r < rows.size(); ++r) {
        const bool is_last = r + 1 == rows.size();
        const size_t k = fed.size() - 1;
        std::vector<float> l = row(is_last ? script[std::min(k, script.size() - 1)] : 0);
        if (!is_last || rows.size() == 1) l[size_t(NOSPEECH)] = std::max(l[size_t(NOSPEECH)], sot_nospeech);
        out.insert(out.end(), l.begin(), l.end());
      }
      return out;
    };
  }
};

}  // namespace

TEST(whisper_decoding, special_tokens_from_generation_config) {
  const special_tokens sp = specials();
  EXPECT_EQ(sp.sot, SOT);
  EXPECT_EQ(sp.eot, EOT);
  EXPECT_EQ(sp.transcribe, TRANSCRIBE);
  EXPECT_EQ(sp.translate, TRANSLATE);
  EXPECT_EQ(sp.startofprev, PREV);
  EXPECT_EQ(sp.nospeech, NOSPEECH);  // <|notimestamps|> - 1 without a tokenizer
  EXPECT_EQ(sp.timestamp_begin, TS0);
  EXPECT_EQ(sp.languages.size(), 99u);
  EXPECT_EQ(sp.languages.at("en"), EN);
  EXPECT_EQ(sp.languages.at("su"), 50357);
}

TEST(whisper_decoding, prefix_layout) {
  const special_tokens sp = specials();
  window_options o;
  o.language_token = EN;
  EXPECT_EQ(make_prefix(sp, o).ids, (std::vector<int32_t>{SOT, EN, TRANSCRIBE, NOTS}));
  o.timestamps = true;
  o.translate = true;
  EXPECT_EQ(make_prefix(sp, o).ids, (std::vector<int32_t>{SOT, EN, TRANSLATE}));
  o.prompt = {11, 12};
  const decoder_prefix p = make_prefix(sp, o);
  EXPECT_EQ(p.ids, (std::vector<int32_t>{PREV, 11, 12, SOT, EN, TRANSLATE}));
  EXPECT_EQ(p.sot_index, 3);
  special_tokens en_only = sp;
  en_only.multilingual = false;
  window_options e;
  EXPECT_EQ(make_prefix(en_only, e).ids, (std::vector<int32_t>{SOT, NOTS}));
  e.translate = true;
  EXPECT_THROW(make_prefix(en_only, e), error);
  EXPECT_EQ(truncate_prompt(std::vector<int32_t>(500, 7), 448).size(), 223u);
}

TEST(whisper_decoding, suppression_without_timestamps) {
  const special_tokens sp = specials();
  const generation_config g = gen_config();
  std::vector<float> l(static_cast<size_t>(V), 1.0f);
  apply_logit_rules(sp, g, false, {}, l.data());
  EXPECT_TRUE(std::isinf(l[220]) && std::isinf(l[EOT])) << "begin_suppress_tokens at the first step";
  EXPECT_TRUE(std::isinf(l[1]) && std::isinf(l[SOT]) && std::isinf(l[NOSPEECH])) << "suppress_tokens";
  EXPECT_EQ(l[5], 1.0f);
  EXPECT_EQ(l[TS0 + 3], 1.0f) << "timestamps are not suppressed without the timestamp rules";
  std::vector<float> m(static_cast<size_t>(V), 1.0f);
  apply_logit_rules(sp, g, false, {5}, m.data());
  EXPECT_EQ(m[220], 1.0f);
  EXPECT_EQ(m[EOT], 1.0f);
  EXPECT_TRUE(std::isinf(m[1]));
}

TEST(whisper_decoding, timestamp_rules) {
  const special_tokens sp = specials();
  const generation_config g = gen_config();
  // Text tokens at 5 beat any single timestamp (0); 1501 timestamps together (log 1501 = 7.3) beat them.
  auto rules = [&](const std::vector<int32_t>& gen, float eot_logit = 0.0f) {
    std::vector<float> l(static_cast<size_t>(V), 0.0f);
    for (int32_t i = 0; i < 400; ++i) l[size_t(i)] = 5.0f;
    l[size_t(EOT)] = eot_logit;
    apply_logit_rules(sp, g, true, gen, l.data());
    return l;
  };
  // First step: a timestamp of at most max_initial_timestamp_index (50), never text or <|endoftext|>.
  std::vector<float> l = rules({});
  EXPECT_TRUE(std::isinf(l[5]) && std::isinf(l[EOT]) && std::isinf(l[NOTS]));
  EXPECT_FALSE(std::isinf(l[TS0]));
  EXPECT_FALSE(std::isinf(l[TS0 + 50]));
  EXPECT_TRUE(std::isinf(l[TS0 + 51]));
  // After an opening timestamp: text (a timestamp now would be a pair with nothing in it).
  l = rules({TS0 + 10});
  EXPECT_TRUE(std::isinf(l[TS0 + 20]));
  EXPECT_FALSE(std::isinf(l[5]));
  // After text following it: text, <|endoftext|>, or a timestamp not before the last one... and the total
  // timestamp probability (1101 timestamps at 0 vs text at 5) decides: here it beats every text token.
  l = rules({TS0 + 10, 5});
  EXPECT_TRUE(std::isinf(l[TS0 + 9]));
  EXPECT_TRUE(std::isinf(l[TS0 + 10])) << "not equal to the opening timestamp either";
  EXPECT_FALSE(std::isinf(l[TS0 + 11]));
  EXPECT_TRUE(std::isinf(l[5])) << "timestamps' total probability beats every text token";
  // A closing timestamp without a partner: a timestamp >= it or <|endoftext|>, no text.
  l = rules({TS0 + 10, 5, TS0 + 30}, 9.0f);  // <|endoftext|> at 9 beats the timestamps' total
  EXPECT_TRUE(std::isinf(l[5]));
  EXPECT_FALSE(std::isinf(l[EOT]));
  EXPECT_FALSE(std::isinf(l[TS0 + 30]));
  EXPECT_TRUE(std::isinf(l[TS0 + 29]));
  // A pair just closed: text next.
  l = rules({TS0 + 10, 5, TS0 + 30, TS0 + 30});
  EXPECT_TRUE(std::isinf(l[TS0 + 40]));
  EXPECT_FALSE(std::isinf(l[5]));
}

TEST(whisper_decoding, greedy_window_stops_and_scores) {
  const special_tokens sp = specials();
  const generation_config g = gen_config();
  scripted s;
  s.script = {11, 12, 13, EOT};
  s.sot_nospeech = 9.0f;
  window_options o;
  o.language_token = EN;
  const window_result r = decode_window(s.fn(), sp, g, o, 448);
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{11, 12, 13}));
  EXPECT_TRUE(r.ended);
  ASSERT_EQ(s.fed.size(), 4u);
  EXPECT_EQ(s.fed[0], (std::vector<int32_t>{SOT, EN, TRANSCRIBE, NOTS}));
  EXPECT_EQ(s.fed[1], std::vector<int32_t>{11});
  EXPECT_EQ(s.fed[3], std::vector<int32_t>{13});  // <|endoftext|> is never fed back
  // Every step's favourite had logit 10 against 0 elsewhere (minus the suppressed): the same log-probability.
  EXPECT_LT(r.avg_logprob, 0.0);
  EXPECT_NEAR(r.avg_logprob, r.sum_logprob / 4.0, 1e-12);
  // The raw logits of the <|startoftranscript|> row (the first of the two rows asked): 10 for token 0, 9 for
  // <|nospeech|>, 0 elsewhere.
  const double denom = std::exp(10.0) + std::exp(9.0) + double(V - 2);
  EXPECT_NEAR(r.no_speech_prob, std::exp(9.0) / denom, 1e-6);
}

TEST(whisper_decoding, position_limit) {
  const special_tokens sp = specials();
  generation_config g = gen_config();
  scripted s;
  s.script = {42};  // never <|endoftext|>
  window_options o;
  o.language_token = EN;
  const window_result r = decode_window(s.fn(), sp, g, o, 448);
  EXPECT_FALSE(r.ended);
  EXPECT_EQ(r.tokens.size(), 448u - 4u) << "prefix + generated = max_target_positions, as transformers' max_length";
  g.max_length = 10;
  scripted t;
  t.script = {42};
  EXPECT_EQ(decode_window(t.fn(), sp, g, o, 448).tokens.size(), 9u) << "max_length 10 + 3 prefix tokens beyond the first - 4";
}

TEST(whisper_decoding, language_detection_picks_among_language_tokens) {
  const special_tokens sp = specials();
  scripted s;
  s.script = {5};  // a text token is the overall favourite: must be ignored
  step_fn base = s.fn();
  step_fn with_de = [&](const std::vector<int32_t>& ids, const std::vector<int32_t>& rows) {
    std::vector<float> l = base(ids, rows);
    l[size_t(DE)] = 3.0f;
    l[size_t(EN)] = 2.0f;
    return l;
  };
  EXPECT_EQ(detect_language(with_de, sp), DE);
  EXPECT_EQ(s.fed[0], std::vector<int32_t>{SOT});
}

TEST(whisper_decoding, timestamped_segments_and_seek) {
  const special_tokens sp = specials();
  // <|0.00|> a b <|1.00|><|1.00|> c <|2.50|>  : two segments, ends on a single timestamp -> the whole window.
  const std::vector<int32_t> single = {TS0, 1, 2, TS0 + 50, TS0 + 50, 3, TS0 + 125};
  window_segments w = split_timestamped(sp, single, 30.0, 3000);
  ASSERT_EQ(w.segments.size(), 2u);
  EXPECT_DOUBLE_EQ(w.segments[0].start, 30.0);
  EXPECT_DOUBLE_EQ(w.segments[0].end, 31.0);
  EXPECT_DOUBLE_EQ(w.segments[1].start, 31.0);
  EXPECT_DOUBLE_EQ(w.segments[1].end, 32.5);
  EXPECT_EQ(w.advance_frames, 3000);
  // Ends on a pair: the next window starts at the last segment's end (2.5 s = 250 frames).
  const std::vector<int32_t> pair = {TS0, 1, TS0 + 50, TS0 + 50, 3, TS0 + 125, TS0 + 125};
  w = split_timestamped(sp, pair, 0.0, 3000);
  ASSERT_EQ(w.segments.size(), 2u);
  EXPECT_EQ(w.advance_frames, 250);
  // No pair at all: one segment up to the last timestamp.
  w = split_timestamped(sp, {TS0, 1, 2, TS0 + 100}, 0.0, 3000);
  ASSERT_EQ(w.segments.size(), 1u);
  EXPECT_DOUBLE_EQ(w.segments[0].end, 2.0);
  EXPECT_EQ(w.advance_frames, 3000);
}
