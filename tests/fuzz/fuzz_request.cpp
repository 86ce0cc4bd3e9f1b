// tests/fuzz/fuzz_request.cpp: libFuzzer target for request bodies -> validated requests: the bounded JSON parser
// (formats/json_limits.h) and the OpenAI protocol validation of server/protocol.h for every endpoint that takes a
// body (chat completions, completions, tokenize, detokenize). Every rejection must be an autoglm::error (the
// server's 400 with a "param"); anything else escaping is a 500 or worse. What validation accepts is then used
// the way the endpoints use it: copied, serialized for the template, turned into sampling parameters.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/json_limits.h"
#include "fuzz_common.h"
#include "server/protocol.h"

namespace {

using namespace autoglm::server;

// What the chat layer does with validated template inputs: copy them and render them as JSON text.
void use_template_params(const template_params& t) {
  nlohmann::ordered_json copy = t.messages;
  std::string s = copy.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  s += t.tools.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  s += t.chat_template_kwargs.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  FUZZ_CHECK(t.messages.is_array() || t.messages.is_null());
  FUZZ_CHECK(t.chat_template_kwargs.is_object());
  FUZZ_CHECK(!t.chat_template_kwargs.contains("enable_thinking"), "enable_thinking must be lifted out");
}

void use_common(const common_params& p, size_t body_bytes) {
  FUZZ_CHECK(p.n >= 1, "n=" + std::to_string(p.n));
  FUZZ_CHECK(!p.max_tokens || *p.max_tokens >= 1);
  FUZZ_CHECK(p.top_logprobs >= -1 && p.top_logprobs <= 20);
  autoglm::generation_defaults defaults;
  const int32_t max_model_len = 4096;
  const int32_t n_prompt = int32_t(body_bytes % 5000);  // sometimes past the context: that must be a 400
  try {
    autoglm::sampling_params s = make_sampling(p, defaults, n_prompt, max_model_len);
    FUZZ_CHECK(s.max_tokens >= 1 && s.max_tokens <= max_model_len - n_prompt,
               "max_tokens=" + std::to_string(s.max_tokens));
  } catch (const autoglm::error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  nlohmann::ordered_json body;
  try {
    body = autoglm::parse_ordered_json(text);
  } catch (const autoglm::error&) {
    return 0;
  }
  try {
    chat_params p = parse_chat_request(body);
    use_common(p, size);
    use_template_params(p);
  } catch (const autoglm::error&) {
  }
  try {
    completion_params p = parse_completion_request(body);
    use_common(p, size);
    FUZZ_CHECK(!p.prompts.empty());
    for (const auto& cp : p.prompts) FUZZ_CHECK(!cp.is_tokens || !cp.tokens.empty());
  } catch (const autoglm::error&) {
  }
  try {
    tokenize_params p = parse_tokenize_request(body);
    FUZZ_CHECK(p.prompt.has_value() != !p.messages.is_null(), "exactly one of prompt and messages");
    use_template_params(p);
  } catch (const autoglm::error&) {
  }
  try {
    detokenize_params p = parse_detokenize_request(body);
    for (int32_t id : p.tokens) FUZZ_CHECK(id >= 0);
  } catch (const autoglm::error&) {
  }
  return 0;
}
