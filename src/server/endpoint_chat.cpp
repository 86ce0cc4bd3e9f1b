// server/endpoint_chat.cpp: POST /v1/chat/completions and POST /v1/completions.
// Both run on the CPU pool (router.cpp: post_body): validation and prompt preparation (image decoding, template,
// tokenizing), so a large screenshot or prompt never stalls other connections; submission and streaming run
// back on the connection's strand in generation_job.
#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/token_text.h"
#include "tokenizer/tokenizer.h"

namespace autoglm::server {

using nlohmann::json;

namespace {

// Token ids a request may name: below both the tokenizer's and the model's vocabulary (the embedding table
// can be padded past the tokenizer).
int32_t vocab_bound(const app& a) { return std::max(a.chat->get_tokenizer().vocab_size(), a.chat->info().vocab_size); }

job_options make_job_options(job_kind kind, const common_params& p, arrival_time arrival) {
  job_options o;
  o.kind = kind;
  o.stream = p.stream;
  o.include_usage = p.include_usage;
  o.logprobs = p.top_logprobs >= 0;
  o.arrival = arrival;
  return o;
}

// Template, tokenizing and images (CPU pool), then submission on the strand. Runs after input_audio parts became
// transcripts (after_audio_parts).
void prepare_and_submit_chat(app& a, const std::shared_ptr<connection>& conn, const std::shared_ptr<chat_params>& p,
                             arrival_time arrival) {
  chat_options co = take_template_options(*p);
  co.max_images = a.options.max_images;
  // The context must hold the prompt and at least one generated token; past that, preparation stops early (a
  // 50 MB prompt is not tokenized in full, images over the budget are never decoded).
  co.max_prompt_tokens = a.eng->max_model_len() - 1;
  auto prompt = std::make_shared<prepared_prompt>(a.chat->prepare_chat(p->messages, co));
  // The messages (screenshots as base64) are not needed past here: free them before the request runs.
  p->messages = nullptr;

  run_on_strand(conn, [&a, conn, p, prompt, arrival] {
    sampling_params s = make_sampling(*p, a.defaults, prompt->n_prompt_tokens, a.eng->max_model_len());
    std::vector<job_choice> choices(p->n);
    for (int32_t i = 0; i < p->n; ++i) {
      job_choice& c = choices[i];
      c.request = i + 1 < p->n ? prompt->request : std::move(prompt->request);
      c.request.sampling = s;
      // n > 1 with a seed: distinct but reproducible choices.
      if (s.seed && i > 0) c.request.sampling.seed = *s.seed + uint64_t(i);
      c.output.stop = p->stop;
      c.output.skip_special_tokens = p->skip_special_tokens;
      c.output.split_reasoning = p->return_reasoning;
    }
    job_options o = make_job_options(job_kind::CHAT, *p, arrival);
    o.return_reasoning = p->return_reasoning;
    std::make_shared<generation_job>(a, conn, o)->start(std::move(choices));
  });
}

}  // namespace

void handle_chat_completions(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body,
                             arrival_time arrival) {
  auto p = std::make_shared<chat_params>(parse_chat_request(std::move(body)));
  body = nullptr;  // what is left of it (messages, tools and kwargs were moved out)
  check_model_name(a, p->model);
  check_token_ids(*p, vocab_bound(a));
  if (p->image) {
    apply_extra_image(p->messages, *p->image, p->query);
    p->image.reset();
  }
  after_audio_parts(a, conn, p->messages, [&a, conn, p, arrival] { prepare_and_submit_chat(a, conn, p, arrival); });
}

void handle_completions(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body,
                        arrival_time arrival) {
  auto p = std::make_shared<completion_params>(parse_completion_request(body));
  body = nullptr;
  check_model_name(a, p->model);
  check_token_ids(*p, vocab_bound(a));

  completion_options co;
  co.max_prompt_tokens = a.eng->max_model_len() - 1;  // as for chat: tokenizing stops past the context
  auto prompts = std::make_shared<std::vector<prepared_prompt>>();
  for (completion_prompt& cp : p->prompts) {
    json prompt = cp.is_tokens ? json(cp.tokens) : json(std::move(cp.text));
    prompts->push_back(a.chat->prepare_completion(prompt, co));
    if (p->echo && prompts->back().prompt_text.empty())
      prompts->back().prompt_text = decode_tokens(a.chat->get_tokenizer(), cp.tokens, false);
  }

  run_on_strand(conn, [&a, conn, p, prompts, arrival] {
    std::vector<job_choice> choices;
    for (size_t g = 0; g < prompts->size(); ++g) {
      const prepared_prompt& pp = (*prompts)[g];
      sampling_params s = make_sampling(*p, a.defaults, pp.n_prompt_tokens, a.eng->max_model_len());
      for (int32_t i = 0; i < p->n; ++i) {
        job_choice c;
        c.request = pp.request;
        c.request.sampling = s;
        if (s.seed && i > 0) c.request.sampling.seed = *s.seed + uint64_t(i);
        c.output.stop = p->stop;
        c.output.skip_special_tokens = p->skip_special_tokens;
        c.prompt_group = int32_t(g);
        if (p->echo) c.echo_text = pp.prompt_text;
        choices.push_back(std::move(c));
      }
    }
    std::make_shared<generation_job>(a, conn, make_job_options(job_kind::COMPLETION, *p, arrival))
        ->start(std::move(choices));
  });
}

}  // namespace autoglm::server
