// server/endpoint_tokenize.cpp: POST /tokenize and /detokenize with vLLM's request and response bodies.
// Both run on the CPU pool (router.cpp: post_body), the response text included; only the send is on the strand.
#include "core/error.h"
#include "server/api_error.h"
#include "server/app.h"
#include "server/token_text.h"
#include "tokenizer/tokenizer.h"

namespace autoglm::server {

using nlohmann::json;

namespace {

void send_json_from_pool(const std::shared_ptr<connection>& conn, const json& body) {
  auto text = std::make_shared<std::string>(body.dump(-1, ' ', false, json::error_handler_t::replace));
  run_on_strand(conn, [conn, text] { conn->send(200, std::move(*text), "application/json"); });
}

}  // namespace

void handle_tokenize(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body, arrival_time) {
  auto p = std::make_shared<tokenize_params>(parse_tokenize_request(std::move(body)));
  body = nullptr;
  check_model_name(a, p->model);
  // Up to the context length: a longer prompt could never run, and tokenizing stops once it is known to be
  // longer (a 50 MB prompt costs what max_model_len tokens cost), as the generation endpoints do.
  const int32_t limit = a.eng->max_model_len();
  auto answer = [&a, conn](const std::vector<int32_t>& tokens) {
    send_json_from_pool(conn, {{"count", tokens.size()},
                               {"max_model_len", a.eng->max_model_len()},
                               {"tokens", tokens},
                               {"token_strs", nullptr}});
  };
  if (p->prompt) {
    const tokenizer& tok = a.chat->get_tokenizer();
    bounded_encoding enc = p->add_special_tokens ? tok.encode_with_post_processor_bounded(*p->prompt, size_t(limit))
                                                 : tok.encode_bounded(*p->prompt, size_t(limit));
    if (enc.over_limit)
      throw invalid_request("the prompt has more than " + std::to_string(limit) +
                                " tokens, the context length of this model",
                            "prompt");
    return answer(enc.ids);
  }
  // Chat messages: the same prompt /v1/chat/completions would build (images expanded to their placeholders,
  // input_audio parts replaced by their transcripts).
  after_audio_parts(a, conn, p->messages, [&a, p, limit, answer] {
    chat_options co = take_template_options(*p);
    co.add_generation_prompt = p->add_generation_prompt;
    co.max_prompt_tokens = limit;
    answer(a.chat->prepare_chat(p->messages, co).request.prompt);
  });
}

void handle_detokenize(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body, arrival_time) {
  detokenize_params p = parse_detokenize_request(body);
  body = nullptr;
  check_model_name(a, p.model);
  const tokenizer& tok = a.chat->get_tokenizer();
  for (size_t i = 0; i < p.tokens.size(); ++i)
    if (p.tokens[i] >= tok.vocab_size())
      throw invalid_request("token id " + std::to_string(p.tokens[i]) + " is outside the vocabulary (size " +
                                std::to_string(tok.vocab_size()) + ")",
                            "tokens[" + std::to_string(i) + "]");
  send_json_from_pool(conn, {{"prompt", decode_tokens(tok, p.tokens, false)}});
}

}  // namespace autoglm::server
