// tests/fuzz/fuzz_jinja.cpp: libFuzzer target for the Jinja chat-template engine (src/template).
// Input: "<template source>\n%%%%\n<JSON context>" (fuzz_common.h). The context is parsed with the request
// limits (formats/json_limits.h); without a separator, or when the context is not a JSON object, a fixed chat
// context (messages with text and image parts, tools, add_generation_prompt) is used, so template mutations
// still reach the interpreter. Templates come from model files a user downloads and contexts from requests:
// both are untrusted, so anything but an autoglm::error (syntax error, raise_exception, a limit) is a bug.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/json_limits.h"
#include "fuzz_common.h"
#include "template/chat_template.h"

namespace {

const nlohmann::ordered_json& default_context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"json({
    "messages": [
      {"role": "system", "content": "You are a phone agent."},
      {"role": "user", "content": [{"type": "text", "text": "Open settings"},
                                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
      {"role": "assistant", "content": "<think>ok</think>do(action=\"Tap\")", "metadata": "m",
       "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "tap", "arguments": "{\"x\": 1}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "done"},
      {"role": "user", "content": "next"}
    ],
    "tools": [{"type": "function", "function": {"name": "tap", "description": "tap the screen",
               "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}],
    "add_generation_prompt": true,
    "enable_thinking": false,
    "bos_token": "<s>",
    "eos_token": "</s>"
  })json");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = autoglm::fuzz::split_input(data, size);
  nlohmann::ordered_json parsed;
  const nlohmann::ordered_json* context = &default_context();
  if (parts.has_second) {
    try {
      parsed = autoglm::parse_ordered_json(parts.second);
      if (parsed.is_object()) context = &parsed;
    } catch (const autoglm::error&) {
    }
  }
  try {
    autoglm::chat_template tmpl{std::string(parts.first)};
    std::string out = tmpl.render(*context);
    // Rendering twice gives the same text: a render leaves nothing behind that changes the next one (except
    // through the clock).
    if (parts.first.find("strftime_now") == std::string_view::npos)
      FUZZ_CHECK(tmpl.render(*context) == out, "second render differs");
  } catch (const autoglm::error&) {
  }
  return 0;
}
