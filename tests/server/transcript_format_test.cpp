// tests/server/transcript_format_test.cpp: transcription -> OpenAI's response formats (server/transcript_format.h):
// exact SRT / WebVTT text (numbering, HH:MM:SS,mmm vs HH:MM:SS.mmm, rounding, empty cues skipped, cue text that
// would break the format), verbose_json's fields, language names, zlib's compression ratio.
#include "server/transcript_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

using namespace autoglm;
using namespace autoglm::server;

namespace {

transcription sample() {
  transcription t;
  t.text = "Hello world. Second part.";
  t.language = "en";
  t.duration_s = 3723.4561;
  transcription_segment a;
  a.id = 0, a.start = 0.0, a.end = 2.5, a.text = " Hello world.", a.tokens = {50364, 2425, 50489};
  a.avg_logprob = -0.25f, a.no_speech_prob = 0.125f;
  transcription_segment silent;
  silent.id = 1, silent.start = 2.5, silent.end = 3.0, silent.text = "  ";
  transcription_segment b;
  b.id = 2, b.start = 3723.0004, b.end = 3723.4566, b.text = " Second part.\r\n\r\nA --> B";
  t.segments = {a, silent, b};
  return t;
}

}  // namespace

TEST(transcript_format, names) {
  EXPECT_EQ(parse_transcript_format("json"), transcript_format::JSON);
  EXPECT_EQ(parse_transcript_format("verbose_json"), transcript_format::VERBOSE_JSON);
  EXPECT_EQ(parse_transcript_format("vtt"), transcript_format::VTT);
  try {
    parse_transcript_format("xml");
    FAIL() << "no error";
  } catch (const invalid_request& e) {
    EXPECT_EQ(e.param(), "response_format");
  }
  EXPECT_FALSE(transcript_needs_timestamps(transcript_format::TEXT));
  EXPECT_TRUE(transcript_needs_timestamps(transcript_format::SRT));
  EXPECT_EQ(whisper_language_name("en"), "english");
  EXPECT_EQ(whisper_language_name("yue"), "cantonese");
  EXPECT_EQ(whisper_language_name("xx"), "xx");
}

TEST(transcript_format, timestamps) {
  EXPECT_EQ(subtitle_timestamp(0.0, ','), "00:00:00,000");
  EXPECT_EQ(subtitle_timestamp(3723.4566, ','), "01:02:03,457");
  EXPECT_EQ(subtitle_timestamp(59.9996, '.'), "00:01:00.000");  // rounds across the second
  EXPECT_EQ(subtitle_timestamp(-1.0, '.'), "00:00:00.000");
  EXPECT_EQ(subtitle_timestamp(360000.0, ','), "100:00:00,000");
}

TEST(transcript_format, srt_and_vtt) {
  const transcription t = sample();
  const transcript_body srt = format_transcript(t, transcript_format::SRT);
  EXPECT_EQ(srt.text,
            "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n"
            "2\n01:02:03,000 --> 01:02:03,457\nSecond part.\nA -> B\n\n");
  EXPECT_EQ(srt.content_type.rfind("text/plain", 0), 0u);
  const transcript_body vtt = format_transcript(t, transcript_format::VTT);
  EXPECT_EQ(vtt.text,
            "WEBVTT\n\n"
            "00:00:00.000 --> 00:00:02.500\nHello world.\n\n"
            "01:02:03.000 --> 01:02:03.457\nSecond part.\nA -> B\n\n");
  EXPECT_EQ(vtt.content_type.rfind("text/vtt", 0), 0u);
  EXPECT_EQ(format_transcript(t, transcript_format::TEXT).text, "Hello world. Second part.\n");
  transcription empty;
  EXPECT_EQ(format_transcript(empty, transcript_format::SRT).text, "");
  // A transcript cut mid-character (byte-level tokens) is still UTF-8 in text bodies.
  transcription cut;
  cut.text = "a\xe4\xbd";
  EXPECT_EQ(format_transcript(cut, transcript_format::TEXT).text, "a\xef\xbf\xbd\n");
  EXPECT_EQ(format_transcript(empty, transcript_format::VTT).text, "WEBVTT\n\n");
}

TEST(transcript_format, json_and_verbose_json) {
  const transcription t = sample();
  const auto j = nlohmann::json::parse(format_transcript(t, transcript_format::JSON).text);
  EXPECT_EQ(j["text"], t.text);
  EXPECT_EQ(j["usage"]["type"], "duration");
  EXPECT_EQ(j["usage"]["seconds"], 3724);

  const auto v = nlohmann::json::parse(format_transcript(t, transcript_format::VERBOSE_JSON, {true, 0.5f}).text);
  EXPECT_EQ(v["task"], "translate");
  EXPECT_EQ(v["language"], "english");
  EXPECT_DOUBLE_EQ(v["duration"].get<double>(), 3723.4561);
  EXPECT_EQ(v["text"], t.text);
  ASSERT_EQ(v["segments"].size(), 3u);
  const auto& s = v["segments"][0];
  for (const char* k : {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                        "compression_ratio", "no_speech_prob"})
    EXPECT_TRUE(s.contains(k)) << k;
  EXPECT_EQ(s["text"], " Hello world.");
  EXPECT_EQ(s["tokens"], nlohmann::json({50364, 2425, 50489}));
  EXPECT_FLOAT_EQ(s["temperature"].get<float>(), 0.5f);
  EXPECT_FLOAT_EQ(s["avg_logprob"].get<float>(), -0.25f);
  EXPECT_EQ(v["segments"][2]["seek"], 372300);
  EXPECT_EQ(nlohmann::json::parse(format_transcript(t, transcript_format::VERBOSE_JSON).text)["task"], "transcribe");
}

TEST(transcript_format, compression_ratio) {
  EXPECT_EQ(text_compression_ratio(""), 0.0);
  // Repetition (a decoding loop) compresses far better than ordinary text: openai-whisper's 2.4 threshold.
  std::string loop;
  for (int i = 0; i < 50; ++i) loop += "thank you ";
  EXPECT_GT(text_compression_ratio(loop), 2.4);
  EXPECT_LT(text_compression_ratio(" The quick brown fox jumps over the lazy dog."), 1.2);
}
