// server/generation_job.cpp: engine events → OpenAI chat/completions responses (SSE chunks or one JSON body).
#include "server/generation_job.h"

#include "core/error.h"
#include "core/log.h"
#include "server/api_error.h"
#include "server/sse.h"
#include "server/token_text.h"

namespace autoglm::server {

using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

json logprob_entry(const tokenizer& tok, int32_t token, float logprob) {
  token_text t = describe_token(tok, token);
  return {{"token", t.text}, {"logprob", logprob}, {"bytes", t.bytes}};
}

const char* finish_name(finish_reason r) {
  switch (r) {
    case finish_reason::STOP: return "stop";
    case finish_reason::LENGTH: return "length";
    case finish_reason::CANCELLED: return "abort";
    case finish_reason::ERROR: return "error";
    default: return nullptr;
  }
}

}  // namespace

generation_job::generation_job(app& a, std::shared_ptr<connection> conn, job_options options)
    : app_(a), conn_(std::move(conn)), opt_(options) {
  id_ = app_.make_id(opt_.kind == job_kind::CHAT ? "chatcmpl" : "cmpl");
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

generation_job::~generation_job() = default;

void generation_job::start(std::vector<job_choice> choices) {
  const tokenizer& tok = app_.chat->get_tokenizer();
  choices_.resize(choices.size());
  for (size_t i = 0; i < choices.size(); ++i) {
    choices_[i].out = std::make_unique<output_stream>(tok, choices[i].output);
    choices_[i].prompt_group = choices[i].prompt_group;
    choices_[i].echo_text = choices[i].echo_text;
  }

  auto self = shared_from_this();
  auto exec = conn_->executor();
  for (size_t i = 0; i < choices.size(); ++i) {
    uint64_t id = 0;
    try {
      id = app_.eng->submit(std::move(choices[i].request), [self, exec, i](const generation_event& ev) {
        net::post(exec, [self, i, ev] { self->on_event(i, ev); });
      });
    } catch (...) {
      for (size_t k = 0; k < i; ++k) app_.eng->cancel(choices_[k].engine_id);
      for (auto& c : choices_) c.done = true;
      completed_ = true;
      throw;  // the router answers 400 (autoglm::error) or 500
    }
    if (id == 0) {
      for (size_t k = 0; k < i; ++k) app_.eng->cancel(choices_[k].engine_id);
      for (auto& c : choices_) c.done = true;
      completed_ = true;
      throw api_error(503, "the server is at capacity (waiting queue full); retry shortly",
                      "service_unavailable_error", "", "queue_full");
    }
    choices_[i].engine_id = id;
  }

  {
    std::lock_guard lock(app_.jobs_mutex);
    app_.jobs[this] = weak_from_this();
  }
  registered_ = true;
  app_.n_inflight++;

  std::weak_ptr<generation_job> weak = self;
  conn_->on_disconnect([weak] {
    if (auto j = weak.lock()) j->cancel_all("client disconnected");
  });

  if (opt_.stream) {
    conn_->begin_stream();
    for (size_t i = 0; i < choices_.size(); ++i) {
      json chunk = chunk_base();
      if (opt_.kind == job_kind::CHAT) {
        chunk["choices"] = json::array({{{"index", i},
                                         {"delta", {{"role", "assistant"}, {"content", ""}}},
                                         {"logprobs", nullptr},
                                         {"finish_reason", nullptr}}});
        conn_->write_event(sse_data(chunk));
      } else if (!choices_[i].echo_text.empty()) {
        chunk["choices"] = json::array(
            {{{"index", i}, {"text", choices_[i].echo_text}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
        conn_->write_event(sse_data(chunk));
      }
    }
  }
}

json generation_job::chunk_base() const {
  return {{"id", id_},
          {"object", opt_.kind == job_kind::CHAT ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", app_.options.served_model_name}};
}

void generation_job::cancel_all(const char* why) {
  for (auto& c : choices_) {
    if (!c.done && c.engine_id) {
      AG_LOG_DEBUG("{}: cancelling engine request {} ({})", id_, c.engine_id, why);
      app_.eng->cancel(c.engine_id);
    }
  }
}

void generation_job::add_logprobs(choice_state& c, const generation_event& ev) {
  const tokenizer& tok = app_.chat->get_tokenizer();
  if (opt_.kind == job_kind::CHAT) {
    json entry = logprob_entry(tok, ev.token, ev.logprob);
    json top = json::array();
    for (const token_logprob& t : ev.top_logprobs) top.push_back(logprob_entry(tok, t.token, t.logprob));
    entry["top_logprobs"] = std::move(top);
    if (opt_.stream) c.pending_logprobs.push_back(entry);
    else c.logprobs.push_back(std::move(entry));
  } else {
    token_text t = describe_token(tok, ev.token);
    c.lp_tokens.push_back(t.text);
    c.lp_values.push_back(ev.logprob);
    json top = json::object();
    for (const token_logprob& x : ev.top_logprobs) top[describe_token(tok, x.token).text] = x.logprob;
    c.lp_top.push_back(std::move(top));
    c.lp_offsets.push_back(c.echo_text.size() + c.text_offset);
    c.text_offset += t.text.size();
  }
}

void generation_job::on_event(size_t i, const generation_event& ev) {
  choice_state& c = choices_[i];
  if (c.done) return;  // e.g. the CANCELLED tail after a stop string already finished this choice
  auto now = clock_type::now();
  if (!c.got_event) {
    c.got_event = true;
    app_.metrics.observe_queue_time(std::chrono::duration<double>(now - opt_.arrival).count());
  }
  if (ev.n_prompt_tokens) c.n_prompt = ev.n_prompt_tokens;
  c.n_cached = std::max(c.n_cached, ev.n_cached_prompt_tokens);

  if (ev.has_token) {
    if (!c.got_token) app_.metrics.observe_ttft(std::chrono::duration<double>(now - opt_.arrival).count());
    else app_.metrics.observe_inter_token(std::chrono::duration<double>(now - c.last_token).count());
    c.got_token = true;
    c.last_token = now;
    c.n_tokens++;
    if (opt_.logprobs) add_logprobs(c, ev);
    output_delta d = c.out->push(ev.token);
    if (d.stop_matched) {
      // A stop string ended this choice: nothing after it may leak, and the engine need not go on.
      output_delta tail = c.out->finish();
      d.content += tail.content;
      d.reasoning += tail.reasoning;
      app_.eng->cancel(c.engine_id);
      emit(i, d, "stop");
      finish_choice(i, "stop");
      return;
    }
    if (ev.finish == finish_reason::NONE) {
      emit(i, d, nullptr);
      return;
    }
    // The last token and the finish arrived together: emit the token's text with the final flush below.
    output_delta tail = c.out->finish();
    d.content += tail.content;
    d.reasoning += tail.reasoning;
    const char* reason = finish_name(ev.finish);
    if (ev.finish == finish_reason::ERROR) c.error = ev.error.empty() ? "generation failed" : ev.error;
    emit(i, d, reason);
    finish_choice(i, reason);
    return;
  }
  if (ev.finish != finish_reason::NONE) {
    output_delta tail = c.out->finish();
    const char* reason = finish_name(ev.finish);
    if (ev.finish == finish_reason::ERROR) c.error = ev.error.empty() ? "generation failed" : ev.error;
    emit(i, tail, reason);
    finish_choice(i, reason);
  }
}

void generation_job::emit(size_t i, const output_delta& d, const char* finish) {
  if (!opt_.stream || conn_->peer_gone()) return;
  choice_state& c = choices_[i];
  if (finish && std::string(finish) == "error") {
    conn_->write_event(sse_data(api_error(500, "generation failed: " + c.error, "internal_server_error").to_json()));
    return;
  }
  bool has_text = !d.content.empty() || !d.reasoning.empty();
  if (!has_text && !finish) return;  // text held back (stop-string prefix, partial UTF-8): logprobs wait too
  json chunk = chunk_base();
  json choice = {{"index", i}};
  if (opt_.kind == job_kind::CHAT) {
    json delta = json::object();
    if (!d.reasoning.empty()) {
      delta["reasoning_content"] = d.reasoning;
      delta["reasoning"] = d.reasoning;
    }
    if (!d.content.empty()) delta["content"] = d.content;
    choice["delta"] = std::move(delta);
    if (opt_.logprobs && !c.pending_logprobs.empty()) {
      choice["logprobs"] = {{"content", std::move(c.pending_logprobs)}};
      c.pending_logprobs = json::array();
    } else {
      choice["logprobs"] = nullptr;
    }
  } else {
    choice["text"] = d.content + d.reasoning;
    if (opt_.logprobs) {
      choice["logprobs"] = {{"tokens", c.lp_tokens}, {"token_logprobs", c.lp_values}, {"top_logprobs", c.lp_top},
                            {"text_offset", c.lp_offsets}};
      c.lp_tokens = json::array();
      c.lp_values = json::array();
      c.lp_top = json::array();
      c.lp_offsets = json::array();
    } else {
      choice["logprobs"] = nullptr;
    }
  }
  choice["finish_reason"] = finish ? json(finish) : json(nullptr);
  chunk["choices"] = json::array({std::move(choice)});
  conn_->write_event(sse_data(chunk));
}

void generation_job::finish_choice(size_t i, std::string reason) {
  choice_state& c = choices_[i];
  if (c.done) return;
  c.done = true;
  c.finish_reason = std::move(reason);
  app_.metrics.on_request_finished(c.finish_reason == "abort" ? "cancelled" : c.finish_reason, c.n_prompt,
                                   c.n_tokens);
  if (++n_done_ == choices_.size()) complete();
}

json generation_job::usage() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  std::vector<bool> seen;
  for (const choice_state& c : choices_) {
    completion += c.n_tokens;
    if (size_t(c.prompt_group) >= seen.size()) seen.resize(c.prompt_group + 1, false);
    if (!seen[c.prompt_group]) {
      seen[c.prompt_group] = true;
      prompt += c.n_prompt;
      cached += c.n_cached;
    }
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

void generation_job::complete() {
  if (completed_) return;
  completed_ = true;
  app_.metrics.observe_e2e(std::chrono::duration<double>(clock_type::now() - opt_.arrival).count());
  if (registered_) {
    std::lock_guard lock(app_.jobs_mutex);
    app_.jobs.erase(this);
  }

  if (!conn_->peer_gone()) {
    if (opt_.stream) {
      if (opt_.include_usage) {
        json chunk = chunk_base();
        chunk["choices"] = json::array();
        chunk["usage"] = usage();
        conn_->write_event(sse_data(chunk));
      }
      conn_->write_event(sse_done());
      conn_->end_stream();
    } else {
      std::string error;
      for (const choice_state& c : choices_)
        if (!c.error.empty()) error = c.error;
      if (!error.empty()) {
        conn_->send_error(api_error(500, "generation failed: " + error, "internal_server_error"));
      } else {
        json out_choices = json::array();
        for (size_t i = 0; i < choices_.size(); ++i) {
          const choice_state& c = choices_[i];
          json choice = {{"index", i}};
          if (opt_.kind == job_kind::CHAT) {
            output_message m = c.out->final_message();
            json message = {{"role", "assistant"}, {"content", m.content}};
            if (opt_.return_reasoning && m.reasoning) {
              message["reasoning_content"] = *m.reasoning;
              message["reasoning"] = *m.reasoning;
            }
            choice["message"] = std::move(message);
            choice["logprobs"] = opt_.logprobs ? json{{"content", c.logprobs}} : json(nullptr);
          } else {
            choice["text"] = c.echo_text + c.out->text();
            choice["logprobs"] = opt_.logprobs ? json{{"tokens", c.lp_tokens},
                                                      {"token_logprobs", c.lp_values},
                                                      {"top_logprobs", c.lp_top},
                                                      {"text_offset", c.lp_offsets}}
                                               : json(nullptr);
          }
          choice["finish_reason"] = c.finish_reason;
          out_choices.push_back(std::move(choice));
        }
        json body = {{"id", id_},
                     {"object", opt_.kind == job_kind::CHAT ? "chat.completion" : "text_completion"},
                     {"created", created_},
                     {"model", app_.options.served_model_name},
                     {"choices", std::move(out_choices)},
                     {"usage", usage()}};
        if (opt_.kind == job_kind::CHAT) body["system_fingerprint"] = nullptr;
        conn_->send_json(200, body);
      }
    }
  }
  if (registered_) app_.n_inflight--;
}

}  // namespace autoglm::server
