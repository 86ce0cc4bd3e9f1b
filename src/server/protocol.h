// server/protocol.h: OpenAI request bodies → validated C++ structs. Every type or range problem throws
// autoglm::invalid_request naming the JSON field (the server answers 400 with it as "param").
// Unknown fields are ignored, as OpenAI-compatible servers do; JSON null means "not set".
// Bodies are nlohmann::ordered_json: what reaches the chat template (messages, tools, chat_template_kwargs) keeps
// the client's key order, so `tools|tojson` renders a schema as the client wrote it (HF and vLLM do the same;
// nlohmann::json would sort the keys). A plain nlohmann::json converts implicitly, in its sorted order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "autoglm/engine.h"
#include "formats/json_limits.h"

namespace autoglm::server {

// Limits for parsing a request body (formats/json_limits.h), so a hostile body costs at most the bytes read.
// Depth 128: the deepest real requests are tool parameter / response_format JSON schemas. Each schema level
// nests two JSON levels ("properties" -> the property's schema), plus 5 around it (body -> tools -> [i] ->
// function -> parameters), so a 20-level schema is ~45 levels; 128 leaves room for ~60 schema levels, and bounds
// every recursive walk of the value afterwards (copy, dump, template conversion) to 128 frames.
// Values: a /v1/completions token-array prompt may be as long as the context, and a request may carry several;
// 2^20 covers 16 prompts of 64K tokens, and larger contexts get 4 full-context prompts. At ~16-50 bytes per
// parsed value the DOM stays within tens of MB.
constexpr int32_t max_request_json_depth = 128;
json_limits request_json_limits(int32_t max_model_len);

// Sampling defaults (generation_config.json) come from the runtime: autoglm::load_generation_defaults.

// Fields shared by /v1/chat/completions and /v1/completions.
struct common_params {
  std::string model;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;              // stream_options.include_usage
  std::optional<int32_t> max_tokens;       // max_tokens / max_completion_tokens
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k;
  float frequency_penalty = 0.0f, presence_penalty = 0.0f;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  int32_t top_logprobs = -1;               // -1: no logprobs
  std::string user;
  // Validated but not applied by the engine (its sampler has no bias); check_token_ids checks the ids.
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// What a chat request passes to the template besides the messages (vLLM's chat and tokenize requests share it).
struct template_params {
  nlohmann::ordered_json messages;         // validated shape; the chat layer renders it
  nlohmann::ordered_json tools;            // null, or the validated OpenAI tools array as sent
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();  // less enable_thinking
  std::optional<bool> enable_thinking;     // top level, or chat_template_kwargs.enable_thinking
};

struct chat_params : common_params, template_params {
  // Validated as OpenAI does, then not enforced: this server parses no tool calls and has no constrained
  // decoding (response_format json_object / json_schema), see docs in the README.
  std::string response_format = "text";   // text | json_object | json_schema
  std::string tool_choice;                 // "" (unset) | none | auto | required | function
  bool return_reasoning = false;
  std::optional<std::string> image;        // guide extension: base64 or data URI for the last user message
  std::optional<std::string> query;
};

struct completion_prompt {
  std::string text;                        // used when tokens is empty
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct completion_params : common_params {
  std::vector<completion_prompt> prompts;  // a string, a token array, or an array of either
  bool echo = false;
};

struct tokenize_params : template_params {  // messages: set when the request has no prompt
  std::string model;
  std::optional<std::string> prompt;       // either prompt or chat messages (rendered with the template)
  bool add_special_tokens = true;
  bool add_generation_prompt = true;
};

struct detokenize_params {
  std::string model;
  std::vector<int32_t> tokens;
};

chat_params parse_chat_request(const nlohmann::ordered_json& body);
completion_params parse_completion_request(const nlohmann::ordered_json& body);
tokenize_params parse_tokenize_request(const nlohmann::ordered_json& body);
detokenize_params parse_detokenize_request(const nlohmann::ordered_json& body);
// Same, moving messages / tools / chat_template_kwargs out of the body instead of copying them (a screenshot is
// tens of MB of base64); the body is left partly moved-from.
chat_params parse_chat_request(nlohmann::ordered_json&& body);
tokenize_params parse_tokenize_request(nlohmann::ordered_json&& body);

// Token ids a request names (logit_bias keys, stop_token_ids) must be below the vocabulary size.
void check_token_ids(const common_params& p, int32_t vocab_size);

// Engine sampling parameters: request fields, else defaults; max_tokens is capped so prompt + output fits the
// context (a request that asks for more gets what fits, finish_reason "length", as vLLM does).
sampling_params make_sampling(const common_params& p, const generation_defaults& d, int32_t n_prompt_tokens,
                              int32_t max_model_len);

}  // namespace autoglm::server
