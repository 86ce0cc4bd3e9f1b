// server/endpoint_chat.cpp: POST /v1/chat/completions and POST /v1/completions.
// Parsing and validation run on the I/O strand; prompt preparation (image decoding, template, tokenizing) runs
// on the CPU pool so a large screenshot never stalls other connections; submission and streaming run back on
// the strand in generation_job.
#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/token_text.h"

namespace autoglm::server {

using nlohmann::json;

namespace {

// Runs `prepare` on the CPU pool, then `submit` on the connection's strand; exceptions from either become the
// usual OpenAI error responses.
template <class Prepare, class Submit>
void prepare_then_submit(app& a, const std::shared_ptr<connection>& conn, Prepare prepare, Submit submit) {
  net::post(a.cpu_pool, [&a, conn, prepare = std::move(prepare), submit = std::move(submit)]() mutable {
    auto fail = [conn](api_error e) {
      net::post(conn->executor(), [conn, e] {
        header_list h;
        if (e.status() == 503) h.push_back({"Retry-After", "1"});
        conn->send_error(e, h);
      });
    };
    auto guarded = [fail](auto&& fn) -> bool {
      try {
        fn();
        return true;
      } catch (const api_error& e) {
        fail(e);
      } catch (const invalid_request& e) {
        fail(api_error(400, e.what(), "invalid_request_error", e.param()));
      } catch (const autoglm::error& e) {
        fail(api_error(400, e.what(), "invalid_request_error"));
      } catch (const std::exception& e) {
        AG_LOG_ERROR("preparing a prompt: {}", e.what());
        fail(api_error(500, std::string("internal error: ") + e.what(), "internal_server_error"));
      }
      return false;
    };
    auto prepared = std::make_shared<decltype(prepare())>();
    if (!guarded([&] { *prepared = prepare(); })) return;
    net::post(conn->executor(), [conn, prepared, submit = std::move(submit), guarded]() mutable {
      guarded([&] { submit(std::move(*prepared)); });
    });
  });
}

}  // namespace

void handle_chat_completions(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body) {
  auto arrival = std::chrono::steady_clock::now();
  auto p = std::make_shared<chat_params>(parse_chat_request(body));
  check_model_name(a, p->model);
  if (p->image) apply_extra_image(p->messages, *p->image, p->query);

  chat_options co = template_options(*p);
  co.max_images = a.options.max_images;

  prepare_then_submit(
      a, conn, [&a, p, co] { return a.chat->prepare_chat(p->messages, co); },
      [&a, conn, p, arrival](prepared_prompt prompt) {
        sampling_params s = make_sampling(*p, a.defaults, prompt.n_prompt_tokens, a.eng->max_model_len());
        std::vector<job_choice> choices(p->n);
        for (int32_t i = 0; i < p->n; ++i) {
          job_choice& c = choices[i];
          c.request = i + 1 < p->n ? prompt.request : std::move(prompt.request);
          c.request.sampling = s;
          // n > 1 with a seed: distinct but reproducible choices.
          if (s.seed && i > 0) c.request.sampling.seed = *s.seed + uint64_t(i);
          c.output.stop = p->stop;
          c.output.skip_special_tokens = p->skip_special_tokens;
          c.output.split_reasoning = p->return_reasoning;
        }
        job_options o;
        o.kind = job_kind::CHAT;
        o.stream = p->stream;
        o.include_usage = p->include_usage;
        o.logprobs = p->top_logprobs >= 0;
        o.return_reasoning = p->return_reasoning;
        o.arrival = arrival;
        std::make_shared<generation_job>(a, conn, o)->start(std::move(choices));
      });
}

void handle_completions(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body) {
  auto arrival = std::chrono::steady_clock::now();
  auto p = std::make_shared<completion_params>(parse_completion_request(body));
  check_model_name(a, p->model);

  prepare_then_submit(
      a, conn,
      [&a, p] {
        std::vector<prepared_prompt> prompts;
        for (const completion_prompt& cp : p->prompts) {
          json prompt = cp.is_tokens ? json(cp.tokens) : json(cp.text);
          prompts.push_back(a.chat->prepare_completion(prompt));
          if (p->echo && prompts.back().prompt_text.empty())
            prompts.back().prompt_text = decode_tokens(a.chat->get_tokenizer(), cp.tokens, false);
        }
        return prompts;
      },
      [&a, conn, p, arrival](std::vector<prepared_prompt> prompts) {
        std::vector<job_choice> choices;
        for (size_t g = 0; g < prompts.size(); ++g) {
          sampling_params s = make_sampling(*p, a.defaults, prompts[g].n_prompt_tokens, a.eng->max_model_len());
          for (int32_t i = 0; i < p->n; ++i) {
            job_choice c;
            c.request = prompts[g].request;
            c.request.sampling = s;
            if (s.seed && i > 0) c.request.sampling.seed = *s.seed + uint64_t(i);
            c.output.stop = p->stop;
            c.output.skip_special_tokens = p->skip_special_tokens;
            c.prompt_group = int32_t(g);
            if (p->echo) c.echo_text = prompts[g].prompt_text;
            choices.push_back(std::move(c));
          }
        }
        job_options o;
        o.kind = job_kind::COMPLETION;
        o.stream = p->stream;
        o.include_usage = p->include_usage;
        o.logprobs = p->top_logprobs >= 0;
        o.arrival = arrival;
        std::make_shared<generation_job>(a, conn, o)->start(std::move(choices));
      });
}

}  // namespace autoglm::server
