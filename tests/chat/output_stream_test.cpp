// tests/chat/output_stream_test.cpp: stop strings, reasoning split and UTF-8 safety of chat/output_stream
// against the tiny GLM-4-style fixture tokenizer.
#include "chat/output_stream.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {
namespace {

class OutputStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::have_fixture_tokenizer()) GTEST_SKIP() << "fixture tokenizer.json not present yet";
    tok_ = tokenizer::load(test::fixture_tokenizer());
  }

  // One token per byte: stop strings and tags end up split at every possible point.
  std::vector<int32_t> byte_ids(const std::string& text) const {
    std::vector<int32_t> ids;
    for (unsigned char c : text) {
      auto id = tok_->token_to_id(test::byte_token_string(c));
      EXPECT_TRUE(id.has_value()) << "no byte token for " << int(c);
      ids.push_back(id.value_or(0));
    }
    return ids;
  }
  int32_t id(const char* token) const {
    auto v = tok_->token_to_id(token);
    EXPECT_TRUE(v.has_value()) << token;
    return v.value_or(-1);
  }

  struct collected {
    std::string content, reasoning;
    std::vector<output_delta> deltas;
    bool stopped = false;
    std::string matched;
  };
  static collected run(output_stream& s, const std::vector<int32_t>& ids, bool finish = true) {
    collected c;
    for (int32_t t : ids) c.deltas.push_back(s.push(t));
    if (finish) c.deltas.push_back(s.finish());
    for (const output_delta& d : c.deltas) {
      c.content += d.content;
      c.reasoning += d.reasoning;
      if (d.stop_matched) {
        EXPECT_FALSE(c.stopped) << "stop reported twice";
        c.stopped = true;
        c.matched = d.matched_stop;
      }
    }
    return c;
  }
  static std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }

  std::unique_ptr<tokenizer> tok_;
};

TEST_F(OutputStreamTest, PlainTextRoundTrips) {
  std::string text = "Hello world! 打开微信，给张三发送消息。";
  output_stream s(*tok_, {});
  collected c = run(s, tok_->encode(text, false));
  EXPECT_EQ(c.content, text);
  EXPECT_EQ(c.reasoning, "");
  EXPECT_FALSE(c.stopped);
  EXPECT_EQ(s.final_message().content, text);
  EXPECT_FALSE(s.final_message().reasoning.has_value());
}

TEST_F(OutputStreamTest, StopStringSplitAcrossTokensIsNeverLeaked) {
  output_stream s(*tok_, {.stop = {"stop here"}});
  std::vector<int32_t> ids = byte_ids("Hello, stop here please");
  collected c = run(s, ids);
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.matched, "stop here");
  EXPECT_EQ(c.content, "Hello, ");
  EXPECT_EQ(s.text(), "Hello, ");
  // Nothing of the stop string is ever emitted, even its first bytes while it was still ambiguous.
  for (const output_delta& d : c.deltas) EXPECT_EQ(d.content.find('s'), std::string::npos) << d.content;
  EXPECT_TRUE(s.stopped());
  EXPECT_TRUE(s.push(ids[0]).empty()) << "tokens after the stop are ignored";
}

TEST_F(OutputStreamTest, StopStringWithMergedTokens) {
  // Natural BPE tokens: the stop string starts mid-token ("ld" of "world" is inside a merged token).
  std::string text = "The quick brown fox jumps over the lazy dog.";
  std::vector<int32_t> ids = tok_->encode(text, false);
  ASSERT_LT(ids.size(), text.size()) << "fixture should merge some bytes";
  output_stream s(*tok_, {.stop = {"own fox j"}});
  collected c = run(s, ids);
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.content, "The quick br");
}

TEST_F(OutputStreamTest, HeldPrefixIsReleasedWhenItDiverges) {
  output_stream s(*tok_, {.stop = {"world!"}});
  std::string got;
  for (int32_t t : byte_ids("Hello wor")) got += s.push(t).content;
  EXPECT_EQ(got, "Hello ") << "\"wor\" may start the stop string: held back";
  for (int32_t t : byte_ids("ld? ok")) got += s.push(t).content;
  got += s.finish().content;
  EXPECT_EQ(got, "Hello world? ok");
  EXPECT_FALSE(s.stopped());
}

TEST_F(OutputStreamTest, PartialStopAtEndIsFlushedByFinish) {
  output_stream s(*tok_, {.stop = {"END"}});
  collected c = run(s, byte_ids("abcEN"), false);
  EXPECT_EQ(c.content, "abc");
  output_delta last = s.finish();
  EXPECT_EQ(last.content, "EN");
  EXPECT_FALSE(last.stop_matched);
}

TEST_F(OutputStreamTest, MultipleStopStringsEarliestMatchWins) {
  output_stream s(*tok_, {.stop = {"zzz", "b c", "c d"}});
  collected c = run(s, byte_ids("a b c d zzz"));
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.matched, "b c");
  EXPECT_EQ(c.content, "a ");

  // Overlapping candidates: "abd" diverges from "abc" but "bd" completes.
  output_stream s2(*tok_, {.stop = {"abc", "bd"}});
  collected c2 = run(s2, byte_ids("xabd y"));
  EXPECT_EQ(c2.matched, "bd");
  EXPECT_EQ(c2.content, "xa");
}

TEST_F(OutputStreamTest, IncludeStopStringInOutput) {
  output_stream s(*tok_, {.stop = {"</answer"}, .include_stop_str_in_output = true});
  collected c = run(s, byte_ids("done</answer> trailing"));
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.content, "done</answer");
}

TEST_F(OutputStreamTest, Utf8NeverBrokenByteByByte) {
  std::string text = "中文测试：人工智能🙂 ok";
  output_stream s(*tok_, {});
  collected c = run(s, byte_ids(text));
  EXPECT_EQ(c.content, text);
  for (const output_delta& d : c.deltas) EXPECT_TRUE(test::valid_utf8(d.content)) << d.content;
}

TEST_F(OutputStreamTest, MultiByteStopStringSplitAcrossByteTokens) {
  output_stream s(*tok_, {.stop = {"智能"}});
  collected c = run(s, byte_ids("人工智能与机器学习"));
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.content, "人工");
  for (const output_delta& d : c.deltas) EXPECT_TRUE(test::valid_utf8(d.content));
}

TEST_F(OutputStreamTest, SpecialTokensAreSkipped) {
  output_stream s(*tok_, {});
  collected c = run(s, cat({byte_ids("a"), {id("<|begin_of_box|>")}, byte_ids("b"), {id("</answer>")}}));
  EXPECT_EQ(c.content, "ab");

  output_stream keep(*tok_, {.skip_special_tokens = false});
  collected k = run(keep, cat({byte_ids("a"), {id("<|begin_of_box|>")}, byte_ids("b")}));
  EXPECT_EQ(k.content, "a<|begin_of_box|>b");
}

TEST_F(OutputStreamTest, ReasoningSplitByTokenIdWhileStreaming) {
  output_stream s(*tok_, {.split_reasoning = true});
  std::vector<int32_t> ids =
      cat({{id("<think>")}, byte_ids("I should tap."), {id("</think>")}, {id("<answer>")},
           byte_ids("do(action=\"Tap\", element=[1,2])"), {id("</answer>")}});
  std::string reasoning, content;
  bool in_reasoning_phase = true;
  for (int32_t t : ids) {
    output_delta d = s.push(t);
    reasoning += d.reasoning;
    content += d.content;
    if (!d.content.empty()) in_reasoning_phase = false;
    if (!in_reasoning_phase) {
      EXPECT_TRUE(d.reasoning.empty());
    }
  }
  output_delta last = s.finish();
  EXPECT_EQ(reasoning + last.reasoning, "I should tap.");
  EXPECT_EQ(content + last.content, "do(action=\"Tap\", element=[1,2])");
  output_message m = s.final_message();
  ASSERT_TRUE(m.reasoning.has_value());
  EXPECT_EQ(*m.reasoning, "I should tap.");
  EXPECT_EQ(m.content, "do(action=\"Tap\", element=[1,2])");
}

TEST_F(OutputStreamTest, ReasoningTagsNotEmittedEvenWhenSpecialTokensAreKept) {
  output_stream s(*tok_, {.skip_special_tokens = false, .split_reasoning = true});
  collected c = run(s, cat({{id("<think>")}, byte_ids("r"), {id("</think>")}, byte_ids("c")}));
  EXPECT_EQ(c.reasoning, "r");
  EXPECT_EQ(c.content, "c");
}

TEST_F(OutputStreamTest, ReasoningWithoutTagsIsAllContent) {
  output_stream s(*tok_, {.split_reasoning = true});
  collected c = run(s, byte_ids("just an answer"));
  EXPECT_EQ(c.content, "just an answer");
  EXPECT_EQ(c.reasoning, "");
  EXPECT_FALSE(s.final_message().reasoning.has_value());
}

TEST_F(OutputStreamTest, ReasoningUnterminatedStreamsAsReasoningButFinalIsContent) {
  // vLLM glm45: streaming routes after-<think> text to reasoning; the non-streaming parser needs both tags.
  output_stream s(*tok_, {.split_reasoning = true});
  collected c = run(s, cat({byte_ids("pre "), {id("<think>")}, byte_ids("cut off by max_tokens")}));
  EXPECT_EQ(c.content, "pre ");
  EXPECT_EQ(c.reasoning, "cut off by max_tokens");
  output_message m = s.final_message();
  EXPECT_FALSE(m.reasoning.has_value());
  EXPECT_EQ(m.content, "pre cut off by max_tokens");
}

TEST_F(OutputStreamTest, ReasoningFinalDropsTextBeforeThink) {
  output_stream s(*tok_, {.split_reasoning = true});
  run(s, cat({byte_ids("x"), {id("<think>")}, byte_ids("r"), {id("</think>")}, byte_ids("c")}));
  output_message m = s.final_message();
  ASSERT_TRUE(m.reasoning.has_value());
  EXPECT_EQ(*m.reasoning, "r");
  EXPECT_EQ(m.content, "c");
}

TEST_F(OutputStreamTest, StopStringInsideReasoning) {
  output_stream s(*tok_, {.stop = {"STOP"}, .split_reasoning = true});
  collected c = run(s, cat({{id("<think>")}, byte_ids("abc STOP def"), {id("</think>")}, byte_ids("x")}));
  EXPECT_TRUE(c.stopped);
  EXPECT_EQ(c.reasoning, "abc ");
  EXPECT_EQ(c.content, "");
}

TEST_F(OutputStreamTest, HeldStopPrefixStaysBeforeTheTagThatFollowsIt) {
  // "ST" is held as a possible "STOP" when </think> arrives: it must still come out as reasoning.
  output_stream s(*tok_, {.stop = {"STOP"}, .split_reasoning = true});
  collected c = run(s, cat({{id("<think>")}, byte_ids("a ST"), {id("</think>")}, byte_ids("b")}));
  EXPECT_FALSE(c.stopped);
  EXPECT_EQ(c.reasoning, "a ST");
  EXPECT_EQ(c.content, "b");
}

// A copy of the fixture tokenizer without <think>/</think> as added tokens: the tags arrive as plain text.
class TextTagTest : public OutputStreamTest {
 protected:
  void SetUp() override {
    OutputStreamTest::SetUp();
    if (IsSkipped()) return;
    nlohmann::json doc = nlohmann::json::parse(test::read_text(test::fixture_tokenizer()));
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& t : doc["added_tokens"]) {
      if (t["content"] != "<think>" && t["content"] != "</think>") kept.push_back(t);
    }
    doc["added_tokens"] = kept;
    path_ = std::filesystem::temp_directory_path() /
            ("autoglm_chat_text_tags_" + std::to_string(::getpid()) + ".json");
    std::ofstream(path_) << doc.dump();
    tok_ = tokenizer::load(path_.string());
    ASSERT_FALSE(tok_->token_to_id("<think>").has_value());
  }
  void TearDown() override {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  std::filesystem::path path_;
};

TEST_F(TextTagTest, TagsSplitAcrossPushesAreFoundInText) {
  output_stream s(*tok_, {.split_reasoning = true});
  std::string text = "<think>plan: tap</think>do(action=\"Back\")";
  std::string reasoning, content;
  for (int32_t t : byte_ids(text)) {
    output_delta d = s.push(t);
    reasoning += d.reasoning;
    content += d.content;
    EXPECT_EQ(d.content.find('<'), std::string::npos) << "tag bytes leaked: " << d.content;
  }
  output_delta last = s.finish();
  EXPECT_EQ(reasoning + last.reasoning, "plan: tap");
  EXPECT_EQ(content + last.content, "do(action=\"Back\")");
  output_message m = s.final_message();
  ASSERT_TRUE(m.reasoning.has_value());
  EXPECT_EQ(*m.reasoning, "plan: tap");
  EXPECT_EQ(m.content, "do(action=\"Back\")");
}

TEST_F(TextTagTest, PartialTagAtEndIsContent) {
  output_stream s(*tok_, {.split_reasoning = true});
  collected c = run(s, byte_ids("a < b <thi"));
  EXPECT_EQ(c.content, "a < b <thi");
  EXPECT_EQ(c.reasoning, "");
  EXPECT_EQ(s.final_message().content, "a < b <thi");
}

TEST_F(TextTagTest, UnterminatedFinalKeepsTagText) {
  output_stream s(*tok_, {.split_reasoning = true});
  collected c = run(s, byte_ids("<think>half"));
  EXPECT_EQ(c.reasoning, "half");
  EXPECT_EQ(s.final_message().content, "<think>half");
}

}  // namespace
}  // namespace autoglm
