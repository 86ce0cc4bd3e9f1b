// tokenizer_test.cpp: the tokenizer on the tiny GLM-4-style fixture (tests/fixtures/tiny_glm4v): special tokens,
// post-processor, streaming decoder, malformed tokenizer.json errors, and long inputs (no quadratic merging).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using autoglm::tokenizer;

std::string fixture_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/tiny_glm4v"; }

const tokenizer& tiny() {
  static auto t = tokenizer::load(fixture_dir());
  return *t;
}

nlohmann::json fixture_json() {
  std::ifstream in(fixture_dir() + "/tokenizer.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

const char* glm_specials[] = {"<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
                              "<|user|>", "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>",
                              "<|begin_of_video|>", "<|end_of_video|>", "<|image|>", "<|video|>", "<think>", "</think>",
                              "<answer>", "</answer>", "<|begin_of_box|>", "<|end_of_box|>"};

TEST(tokenizer, special_tokens_follow_regular_ids_in_glm_order) {
  const auto& t = tiny();
  auto first = t.token_to_id("<|endoftext|>");
  ASSERT_TRUE(first.has_value());
  int32_t id = *first;
  for (const char* s : glm_specials) {
    auto got = t.token_to_id(s);
    ASSERT_TRUE(got.has_value()) << s;
    EXPECT_EQ(*got, id++) << s;
    EXPECT_TRUE(t.is_special(*got)) << s;
    EXPECT_EQ(t.id_to_token(*got), s);
  }
  auto tool = t.token_to_id("<|mytool|>");
  ASSERT_TRUE(tool.has_value());
  EXPECT_FALSE(t.is_special(*tool));
  EXPECT_EQ(t.vocab_size(), *tool + 1);
  // Regular ids 0..N-1 end right before <|endoftext|>; the byte tokens come first.
  EXPECT_EQ(t.id_to_token(*first - 1).empty(), false);
  EXPECT_FALSE(t.is_special(0));
}

// Spec section 6 test vector, structurally: [gMASK] first, chat specials as single ids, no prefix added by encode().
TEST(tokenizer, glm_test_vector_structure) {
  const auto& t = tiny();
  std::string text = "[gMASK]this is a test where da goose is cooked<|system|>no<|user|>yes<|assistant|>maybe";
  auto ids = t.encode(text);
  ASSERT_GE(ids.size(), 8u);
  EXPECT_EQ(ids.front(), *t.token_to_id("[gMASK]"));
  int n_special = 0;
  for (int32_t id : ids) n_special += t.is_special(id);
  EXPECT_EQ(n_special, 4);
  EXPECT_EQ(t.decode(ids, false), text);
  EXPECT_EQ(t.decode(ids), "this is a test where da goose is cookednoyesmaybe");
  // With the post-processor, GLM's [gMASK]<sop> prefix is added.
  auto post = t.encode_with_post_processor("hi");
  auto plain = t.encode("hi");
  ASSERT_EQ(post.size(), plain.size() + 2);
  EXPECT_EQ(post[0], *t.token_to_id("[gMASK]"));
  EXPECT_EQ(post[1], *t.token_to_id("<sop>"));
}

TEST(tokenizer, parse_special_off_treats_specials_as_text) {
  const auto& t = tiny();
  auto ids = t.encode("<|user|>hi<|mytool|>", false);
  for (int32_t id : ids) EXPECT_FALSE(t.is_special(id));
  EXPECT_EQ(ids.back(), *t.token_to_id("<|mytool|>"));  // non-special added tokens still match, as in HF
  EXPECT_EQ(t.decode(ids), "<|user|>hi<|mytool|>");
  EXPECT_TRUE(t.encode("").empty());
}

TEST(tokenizer, phone_agent_prompt_round_trips) {
  const auto& t = tiny();
  std::string p =
      "[gMASK]<sop><|system|>\nSYS<|user|>\n<|begin_of_image|><|image|><|end_of_image|>\n打开微信\n\n"
      "{\"current_app\": \"System Home\"}<|assistant|>\n<think>点击</think><answer>do(action=\"Tap\", element=[500,300])</answer>";
  auto ids = t.encode(p);
  EXPECT_EQ(t.decode(ids, false), p);
  std::string visible = t.decode(ids);
  EXPECT_EQ(visible.find("<think>"), std::string::npos);
  EXPECT_NE(visible.find("do(action=\"Tap\", element=[500,300])"), std::string::npos);
}

TEST(incremental_decoder, streams_valid_utf8_and_matches_full_decode) {
  const auto& t = tiny();
  std::string text = "Hello 世界! 😀👨‍👩‍👧 naïve café <think>思考</think>ok\n\n  done 🇯🇵";
  for (bool skip : {true, false}) {
    auto ids = t.encode(text);
    autoglm::incremental_decoder dec(t, skip);
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = dec.push(id);
      EXPECT_TRUE(autoglm::utf8::is_valid(piece));
      streamed += piece;
    }
    streamed += dec.flush();
    EXPECT_EQ(streamed, t.decode(ids, skip));
  }
}

TEST(incremental_decoder, holds_incomplete_sequences_until_complete) {
  const auto& t = tiny();
  // A rare character is split into byte tokens; nothing may be emitted until its last byte arrives.
  auto ids = t.encode("\xF0\x9F\xA6\x84");  // U+1F984
  ASSERT_EQ(ids.size(), 4u);
  autoglm::incremental_decoder dec(t);
  EXPECT_EQ(dec.push(ids[0]), "");
  EXPECT_EQ(dec.push(ids[1]), "");
  EXPECT_EQ(dec.push(ids[2]), "");
  EXPECT_EQ(dec.push(ids[3]), "\xF0\x9F\xA6\x84");
  // A stream that ends inside a sequence yields U+FFFD on flush, never raw broken bytes.
  autoglm::incremental_decoder cut(t);
  EXPECT_EQ(cut.push(ids[0]), "");
  EXPECT_EQ(cut.push(ids[1]), "");
  EXPECT_EQ(cut.flush(), "\xEF\xBF\xBD");
  // An invalid sequence followed by ASCII is replaced as soon as it is known to be invalid.
  autoglm::incremental_decoder bad(t);
  EXPECT_EQ(bad.push(ids[0]), "");
  EXPECT_EQ(bad.push(*t.token_to_id("a")), "\xEF\xBF\xBD" "a");
}

TEST(tokenizer, long_repeated_inputs_are_not_quadratic) {
  const auto& t = tiny();
  for (std::string unit : {"a", " ", "\xE4\xB8\xAD", "ab", "tion", "\n", "1"}) {
    std::string s;
    while (s.size() < (1u << 20)) s += unit;
    auto ids = t.encode(s);
    EXPECT_LE(ids.size(), s.size());
    if (unit == "ab" || unit == "tion") {  // "ab", "tion" are tokens
      EXPECT_EQ(ids.size(), s.size() / unit.size());
    }
    EXPECT_EQ(t.decode(ids), s);
  }
  // The same with no pre-tokenizer: the whole megabyte is one BPE word (heap merging, no rescans).
  auto j = fixture_json();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  auto one_word = tokenizer::from_json(j.dump(), "no_split.json");
  std::string s;
  while (s.size() < (1u << 20)) s += "tion";
  auto ids = one_word->encode(s);
  EXPECT_EQ(ids.size(), s.size() / 4);
  EXPECT_EQ(one_word->decode(ids), s);
}

void expect_load_error(const std::string& json_text, const std::string& needle) {
  try {
    tokenizer::from_json(json_text, "broken.json");
    ADD_FAILURE() << "no error for: " << json_text.substr(0, 200);
  } catch (const autoglm::error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("broken.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(tokenizer, malformed_files_give_clear_errors) {
  expect_load_error("{not json", "invalid JSON");
  expect_load_error("[1,2]", "top level");
  expect_load_error("{}", "model");
  expect_load_error(R"({"model": {"type": "Unigram", "vocab": []}})", "Unigram");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": [], "merges": []}})", "vocab");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", "\"b\"");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})", "merges[0]");
  expect_load_error(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})", "integer");

  auto base = fixture_json();
  auto with = [&](const char* key, nlohmann::json v) {
    auto j = base;
    j[key] = std::move(v);
    return j.dump();
  };
  expect_load_error(with("normalizer", {{"type", "BertNormalizer"}}), "BertNormalizer");
  expect_load_error(with("normalizer", {{"type", "Precompiled"}, {"precompiled_charsmap", "AA=="}}), "Precompiled");
  expect_load_error(with("pre_tokenizer", {{"type", "Punctuation"}}), "Punctuation");
  expect_load_error(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}),
                    "regex");
  expect_load_error(with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}),
                    "Sideways");
  expect_load_error(with("decoder", {{"type", "WordPiece"}}), "WordPiece");
  expect_load_error(with("post_processor", {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<x>"}}}}}}}),
                    "<x>");
  expect_load_error(with("added_tokens", {{{"content", "<x>"}}}), "added_tokens[0]");
  expect_load_error(with("normalizer", 5), "normalizer");

  EXPECT_THROW(tokenizer::load("/nonexistent/dir/tokenizer.json"), autoglm::error);
  try {
    tokenizer::load("/nonexistent/dir");
  } catch (const autoglm::error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir"), std::string::npos);
  }
  EXPECT_THROW(tiny().encode("bad \xFF utf8"), autoglm::error);
}

TEST(tokenizer, normalizers_and_metaspace_pipeline) {
  // A sentencepiece-style pipeline built on the fixture vocab: Lowercase + NFC, Metaspace pre-tokenizer/decoder.
  auto j = fixture_json();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Metaspace"}, {"replacement", "\xC4\xA0"}, {"prepend_scheme", "first"}, {"split", true}},
                                           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  auto t = tokenizer::from_json(j.dump(), "lower.json");
  auto upper = t->encode("HELLO World");
  auto lower = t->encode("hello world");
  EXPECT_EQ(upper, lower);
  EXPECT_EQ(t->encode("cafe\xCC\x81"), t->encode("caf\xC3\xA9"));
}

}  // namespace
