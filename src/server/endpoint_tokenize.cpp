// server/endpoint_tokenize.cpp: POST /tokenize and /detokenize with vLLM's request and response bodies.
#include "core/error.h"
#include "server/api_error.h"
#include "server/app.h"
#include "server/token_text.h"
#include "tokenizer/tokenizer.h"

namespace autoglm::server {

using nlohmann::json;

void handle_tokenize(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body) {
  tokenize_params p = parse_tokenize_request(body);
  check_model_name(a, p.model);
  std::vector<int32_t> tokens;
  if (p.prompt) {
    tokens = encode_text(a.chat->get_tokenizer(), *p.prompt, p.add_special_tokens);
  } else {
    // Chat messages: the same prompt /v1/chat/completions would build (images expanded to their placeholders).
    chat_options co = template_options(p);
    co.add_generation_prompt = p.add_generation_prompt;
    tokens = a.chat->prepare_chat(p.messages, co).request.prompt;
  }
  conn->send_json(200, {{"count", tokens.size()}, {"max_model_len", a.eng->max_model_len()}, {"tokens", tokens},
                        {"token_strs", nullptr}});
}

void handle_detokenize(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body) {
  detokenize_params p = parse_detokenize_request(body);
  check_model_name(a, p.model);
  const tokenizer& tok = a.chat->get_tokenizer();
  for (size_t i = 0; i < p.tokens.size(); ++i)
    if (p.tokens[i] >= tok.vocab_size())
      throw invalid_request("token id " + std::to_string(p.tokens[i]) + " is outside the vocabulary (size " +
                                std::to_string(tok.vocab_size()) + ")",
                            "tokens[" + std::to_string(i) + "]");
  conn->send_json(200, {{"prompt", decode_tokens(tok, p.tokens, false)}});
}

}  // namespace autoglm::server
