// server/endpoints_info.cpp: GET /health, GET /v1/models[/id], GET /metrics.
#include "server/api_error.h"
#include "server/app.h"

namespace autoglm::server {

using nlohmann::json;

void handle_health(app& a, const std::shared_ptr<connection>& conn) {
  if (a.state.load() == app_state::READY && !a.draining.load()) {
    conn->send_json(200, {{"status", "ok"}, {"model", a.options.served_model_name}});
    return;
  }
  const bool draining = a.draining.load();
  api_error e(503, draining ? "the server is shutting down" : "the model is loading",
              "service_unavailable_error", "", draining ? "shutting_down" : "model_loading");
  conn->send_error(e, {{"Retry-After", "1"}});
}

void handle_models(app& a, const std::shared_ptr<connection>& conn, const std::string& model_id) {
  auto created = std::chrono::duration_cast<std::chrono::seconds>(a.started.time_since_epoch()).count();
  json model = {{"id", a.options.served_model_name},
                {"object", "model"},
                {"created", created},
                {"owned_by", "autoglm"},
                {"root", a.options.engine.model_dir},
                {"parent", nullptr},
                {"max_model_len", a.eng->max_model_len()}};
  json list = json::array({model});
  if (a.asr) {
    // The speech model (--asr-model) is served beside the chat model, for /v1/audio/*.
    json asr = {{"id", a.asr->model_name()}, {"object", "model"},      {"created", created},
                {"owned_by", "autoglm"},     {"root", a.options.asr_model_dir}, {"parent", nullptr}};
    if (model_id == a.asr->model_name()) return conn->send_json(200, asr);
    list.push_back(std::move(asr));
  }
  if (!model_id.empty()) {
    check_model_name(a, model_id);
    conn->send_json(200, model);
    return;
  }
  conn->send_json(200, {{"object", "list"}, {"data", std::move(list)}});
}

void handle_metrics(app& a, const std::shared_ptr<connection>& conn) {
  engine_gauges g;
  if (a.ready()) {
    engine_stats s = a.eng->stats();
    g.ready = true;
    g.n_running = s.n_running;
    g.n_waiting = s.n_waiting;
    g.n_prompt_tokens_total = s.n_prompt_tokens_total;
    g.n_generated_tokens_total = s.n_generated_tokens_total;
    g.n_prefix_query_tokens = s.n_prefix_query_tokens;
    g.n_prefix_hit_tokens = s.n_prefix_hit_tokens;
    g.kv_blocks_total = s.kv_blocks_total;
    g.kv_blocks_used = s.kv_blocks_used;
  }
  conn->send(200, a.metrics.render(a.options.served_model_name, g), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace autoglm::server
