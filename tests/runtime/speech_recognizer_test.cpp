// tests/runtime/speech_recognizer_test.cpp: autoglm::speech_recognizer (include/autoglm/speech.h) on small random
// Whisper checkpoints written by the test (vocab 51865, the real special ids): load errors name the problem;
// windows of 30 s (35 s of audio: two segments, [0, 30] and [30, 35]); timestamps give ordered segments inside the
// audio; the same call twice gives the same result; language detection answers an ISO code of the model; an
// unknown language or translate-on-English-only is a client error; the silence guard drops windows.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "autoglm/speech.h"
#include "core/error.h"
#include "whisper_fixture.h"

using namespace autoglm;

namespace {

std::vector<float> sine(double seconds, double hz = 440.0) {
  std::vector<float> v(static_cast<size_t>(seconds * 16000));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(0.5 * std::sin(2 * M_PI * hz * double(i) / 16000.0));
  return v;
}

class speech_recognizer_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("whisper_rec"));
    const nlohmann::json cfg = test::tiny_whisper_config(32, 2, 4);
    test::write_whisper_dir(*dir_, cfg, test::whisper_tensor_specs(cfg));
    speech_recognizer::options o;
    o.model_dir = *dir_;
    o.n_threads = 2;
    rec_ = speech_recognizer::load(o).release();
  }
  static void TearDownTestSuite() {
    delete rec_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string* dir_;
  static speech_recognizer* rec_;
};
std::string* speech_recognizer_test::dir_ = nullptr;
speech_recognizer* speech_recognizer_test::rec_ = nullptr;

std::string load_error(const speech_recognizer::options& o) {
  try {
    speech_recognizer::load(o);
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_F(speech_recognizer_test, load_errors_name_the_problem) {
  speech_recognizer::options o;
  o.model_dir = *dir_ + "/nowhere";
  EXPECT_NE(load_error(o).find("not found"), std::string::npos);
  o.model_dir = *dir_;
  o.device = "tpu:0";
  EXPECT_NE(load_error(o), "");
  o.device = "cuda:9";
  EXPECT_NE(load_error(o).find("cuda:9"), std::string::npos);

  const std::string bad = test::temp_dir("whisper_bad");
  nlohmann::json cfg = test::tiny_whisper_config(16, 1, 2);
  test::write_whisper_dir(bad, cfg, test::whisper_tensor_specs(cfg));
  speech_recognizer::options b;
  b.model_dir = bad;
  std::filesystem::remove(bad + "/tokenizer.json");
  EXPECT_NE(load_error(b).find("tokenizer.json"), std::string::npos);
  std::filesystem::remove(bad + "/generation_config.json");
  EXPECT_NE(load_error(b).find("generation_config.json"), std::string::npos);
  cfg["model_type"] = "llama";
  cfg["architectures"] = {"LlamaForCausalLM"};
  std::ofstream(bad + "/config.json") << cfg.dump();
  EXPECT_NE(load_error(b).find("not a Whisper checkpoint"), std::string::npos);
  std::filesystem::remove_all(bad);
}

TEST_F(speech_recognizer_test, windows_of_thirty_seconds) {
  transcription_options o;
  o.language = "en";
  o.no_speech_threshold = 2.0f;  // the guard off: a random model's windows must all come back
  const transcription t = rec_->transcribe(sine(35.0), o);
  EXPECT_EQ(t.language, "en");
  EXPECT_DOUBLE_EQ(t.duration_s, 35.0);
  ASSERT_EQ(t.segments.size(), 2u);
  EXPECT_DOUBLE_EQ(t.segments[0].start, 0.0);
  EXPECT_DOUBLE_EQ(t.segments[0].end, 30.0);
  EXPECT_DOUBLE_EQ(t.segments[1].start, 30.0);
  EXPECT_DOUBLE_EQ(t.segments[1].end, 35.0);
  for (const auto& s : t.segments) {
    EXPECT_FALSE(s.tokens.empty());
    for (int32_t id : s.tokens) EXPECT_LT(id, 51865);
    EXPECT_LE(s.avg_logprob, 0.0f);
  }
  const transcription again = rec_->transcribe(sine(35.0), o);
  EXPECT_EQ(again.text, t.text);
  EXPECT_EQ(again.segments[1].tokens, t.segments[1].tokens);
  EXPECT_EQ(rec_->model_name(), std::filesystem::path(*dir_).filename().string());
}

TEST_F(speech_recognizer_test, timestamps_give_ordered_segments_inside_the_audio) {
  transcription_options o;
  o.language = "en";
  o.timestamps = true;
  o.no_speech_threshold = 2.0f;
  const transcription t = rec_->transcribe(sine(12.0, 300.0), o);
  double last = 0;
  for (const auto& s : t.segments) {
    EXPECT_GE(s.start, last - 1e-9);
    EXPECT_GE(s.end, s.start);
    EXPECT_LE(s.end, 12.0 + 1e-9);
    ASSERT_FALSE(s.tokens.empty());
    EXPECT_GE(s.tokens.front(), 50364) << "a segment opens with a timestamp token";
    last = s.start;
  }
}

TEST_F(speech_recognizer_test, language_detection_and_client_errors) {
  transcription_options o;
  o.no_speech_threshold = 2.0f;
  const transcription t = rec_->transcribe(sine(3.0), o);
  EXPECT_EQ(t.language.size() >= 2 && t.language.size() <= 3, true) << "'" << t.language << "'";
  o.language = "xx";
  EXPECT_THROW(rec_->transcribe(sine(1.0), o), invalid_request);
  o.language = "EN";  // codes are case-insensitive
  EXPECT_EQ(rec_->transcribe(sine(1.0), o).language, "en");
  o.prompt = "  The previous sentence.  ";
  EXPECT_EQ(rec_->transcribe(sine(1.0), o).segments.size(), 1u);
  EXPECT_TRUE(rec_->transcribe({}, o).segments.empty());
}

TEST_F(speech_recognizer_test, silence_guard_drops_windows) {
  // A window is dropped when <|nospeech|> is likelier than the threshold and the average log-probability is below
  // the other: with thresholds every window passes (-1, +inf), every window goes.
  transcription_options o;
  o.language = "en";
  o.no_speech_threshold = -1.0f;
  o.logprob_threshold = 1e9f;
  const transcription t = rec_->transcribe(sine(35.0), o);
  EXPECT_TRUE(t.segments.empty());
  EXPECT_EQ(t.text, "");
  o.logprob_threshold = -1e9f;  // no window's average is below that: all kept
  EXPECT_EQ(rec_->transcribe(sine(35.0), o).segments.size(), 2u);
}
