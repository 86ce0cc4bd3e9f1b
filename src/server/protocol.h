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
#include <vector>

#include <nlohmann/json.hpp>

#include "autoglm/engine.h"

namespace autoglm::server {

// Sampling defaults for fields a request leaves out: the model's generation_config.json (as vLLM does),
// else OpenAI's defaults.
struct generation_defaults {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  std::optional<int32_t> max_new_tokens;
};
// Reads <model_dir>/generation_config.json if present; a malformed file throws autoglm::error naming it.
generation_defaults load_generation_defaults(const std::string& model_dir);

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
};

// What a chat request passes to the template besides the messages (vLLM's chat and tokenize requests share it).
struct template_params {
  nlohmann::ordered_json messages;         // validated shape; the chat layer renders it
  nlohmann::ordered_json tools;            // null, or the validated OpenAI tools array as sent
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();  // less enable_thinking
  std::optional<bool> enable_thinking;     // top level, or chat_template_kwargs.enable_thinking
};

struct chat_params : common_params, template_params {
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

// Engine sampling parameters: request fields, else defaults; max_tokens is capped so prompt + output fits the
// context (a request that asks for more gets what fits, finish_reason "length", as vLLM does).
sampling_params make_sampling(const common_params& p, const generation_defaults& d, int32_t n_prompt_tokens,
                              int32_t max_model_len);

}  // namespace autoglm::server
