// server/metrics.cpp: Prometheus text format.
#include "server/metrics.h"

#include <cstdio>
#include <cstdlib>

namespace autoglm::server {

namespace {

// The shortest decimal that reads back as the same double ("0.005", not "0.0050000000000000001").
std::string fmt_double(double v) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, const std::string& value) {
  out += name;
  out += '{';
  out += labels;
  out += "} ";
  out += value;
  out += '\n';
}

}  // namespace

std::string prometheus_escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void histogram::observe(double value) {
  std::lock_guard lock(mutex_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += value;
  n_++;
}

uint64_t histogram::count() const {
  std::lock_guard lock(mutex_);
  return n_;
}

void histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::lock_guard lock(mutex_);
  uint64_t cumulative = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    std::string le = i < bounds_.size() ? fmt_double(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum{" + labels + "} " + fmt_double(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(n_) + "\n";
}

server_metrics::server_metrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}),
      e2e_({0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0}),
      queue_({0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0}) {}

void server_metrics::on_http_response(int status) {
  std::lock_guard lock(mutex_);
  http_by_status_[status]++;
}

void server_metrics::on_request_finished(const std::string& finish_reason, int32_t n_prompt, int32_t n_generated) {
  prompt_tokens_ += n_prompt;
  generation_tokens_ += n_generated;
  std::lock_guard lock(mutex_);
  finished_by_reason_[finish_reason]++;
}

void server_metrics::on_audio_transcribed(const std::string& source, double audio_seconds) {
  std::lock_guard lock(mutex_);
  auto& [n, seconds] = audio_by_source_[source];
  n++;
  seconds += audio_seconds;
}

std::string server_metrics::render(const std::string& model_name, const engine_gauges& g) const {
  std::string out;
  out.reserve(8192);
  const std::string m = "model_name=\"" + prometheus_escape_label(model_name) + "\"";

  header(out, "autoglm_model_ready", "gauge", "1 when the model is loaded and requests are served.");
  sample(out, "autoglm_model_ready", m, g.ready ? "1" : "0");
  header(out, "autoglm_num_requests_running", "gauge", "Requests in the engine's running batch.");
  sample(out, "autoglm_num_requests_running", m, std::to_string(g.n_running));
  header(out, "autoglm_num_requests_waiting", "gauge", "Requests queued in the engine, waiting for KV blocks or a slot.");
  sample(out, "autoglm_num_requests_waiting", m, std::to_string(g.n_waiting));

  double kv_usage = g.kv_blocks_total > 0 ? double(g.kv_blocks_used) / g.kv_blocks_total : 0.0;
  header(out, "autoglm_kv_cache_usage_perc", "gauge", "Fraction of paged KV-cache blocks in use (0..1).");
  sample(out, "autoglm_kv_cache_usage_perc", m, fmt_double(kv_usage));
  header(out, "autoglm_kv_cache_blocks_total", "gauge", "Paged KV-cache blocks allocated.");
  sample(out, "autoglm_kv_cache_blocks_total", m, std::to_string(g.kv_blocks_total));

  header(out, "autoglm_prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.");
  sample(out, "autoglm_prefix_cache_queries_total", m, std::to_string(g.n_prefix_query_tokens));
  header(out, "autoglm_prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.");
  sample(out, "autoglm_prefix_cache_hits_total", m, std::to_string(g.n_prefix_hit_tokens));
  double hit_rate = g.n_prefix_query_tokens > 0 ? double(g.n_prefix_hit_tokens) / g.n_prefix_query_tokens : 0.0;
  header(out, "autoglm_prefix_cache_hit_rate", "gauge", "Prefix-cache hit tokens / queried tokens since start.");
  sample(out, "autoglm_prefix_cache_hit_rate", m, fmt_double(hit_rate));

  header(out, "autoglm_prompt_tokens_total", "counter", "Prompt tokens of finished requests served over HTTP.");
  sample(out, "autoglm_prompt_tokens_total", m, std::to_string(prompt_tokens_.load()));
  header(out, "autoglm_generation_tokens_total", "counter", "Generated tokens of finished requests served over HTTP.");
  sample(out, "autoglm_generation_tokens_total", m, std::to_string(generation_tokens_.load()));
  header(out, "autoglm_engine_prompt_tokens_total", "counter", "Prompt tokens processed by the engine (all clients).");
  sample(out, "autoglm_engine_prompt_tokens_total", m, std::to_string(g.n_prompt_tokens_total));
  header(out, "autoglm_engine_generation_tokens_total", "counter", "Tokens generated by the engine (all clients).");
  sample(out, "autoglm_engine_generation_tokens_total", m, std::to_string(g.n_generated_tokens_total));

  header(out, "autoglm_time_to_first_token_seconds", "histogram", "Time from request arrival to its first token.");
  ttft_.render(out, "autoglm_time_to_first_token_seconds", m);
  header(out, "autoglm_inter_token_latency_seconds", "histogram", "Time between consecutive output tokens.");
  itl_.render(out, "autoglm_inter_token_latency_seconds", m);
  header(out, "autoglm_e2e_request_latency_seconds", "histogram", "Time from request arrival to its last token.");
  e2e_.render(out, "autoglm_e2e_request_latency_seconds", m);
  header(out, "autoglm_request_queue_time_seconds", "histogram", "Time from arrival to the first engine event.");
  queue_.render(out, "autoglm_request_queue_time_seconds", m);

  header(out, "autoglm_http_connections_open", "gauge", "Open HTTP connections.");
  sample(out, "autoglm_http_connections_open", m, std::to_string(http.n_open_connections.load()));
  header(out, "autoglm_http_write_queue_bytes", "gauge",
         "Response bytes queued for clients and not yet taken by the kernel (all connections).");
  sample(out, "autoglm_http_write_queue_bytes", m, std::to_string(http.queued_write_bytes.load()));
  header(out, "autoglm_http_connections_over_capacity_total", "counter",
         "Connections accepted beyond --max-connections (answered 503, /health still served).");
  sample(out, "autoglm_http_connections_over_capacity_total", m, std::to_string(http.n_over_capacity.load()));
  header(out, "autoglm_http_slow_clients_dropped_total", "counter",
         "Connections closed because the client did not read its response (--max-queued-bytes, --write-timeout).");
  sample(out, "autoglm_http_slow_clients_dropped_total", m, std::to_string(http.n_slow_clients_dropped.load()));
  header(out, "autoglm_http_handler_exceptions_total", "counter",
         "Connections closed because one of their handlers threw (the server goes on).");
  sample(out, "autoglm_http_handler_exceptions_total", m, std::to_string(http.n_handler_exceptions.load()));
  header(out, "autoglm_http_accept_errors_total", "counter", "Failed accepts (e.g. out of file descriptors).");
  sample(out, "autoglm_http_accept_errors_total", m, std::to_string(http.n_accept_errors.load()));

  std::lock_guard lock(mutex_);
  header(out, "autoglm_request_success_total", "counter", "Finished generation requests by finish reason.");
  for (const char* r : {"stop", "length", "cancelled", "error"}) {
    auto it = finished_by_reason_.find(r);
    sample(out, "autoglm_request_success_total", m + ",finished_reason=\"" + r + "\"",
           std::to_string(it == finished_by_reason_.end() ? 0 : it->second));
  }
  header(out, "autoglm_audio_transcriptions_total", "counter",
         "Requests transcribed by the speech model (--asr-model), by source: transcriptions, translations, chat.");
  for (const char* s : {"transcriptions", "translations", "chat"}) {
    auto it = audio_by_source_.find(s);
    sample(out, "autoglm_audio_transcriptions_total", m + ",source=\"" + s + "\"",
           std::to_string(it == audio_by_source_.end() ? 0 : it->second.first));
  }
  header(out, "autoglm_audio_seconds_total", "counter", "Seconds of audio transcribed, by source.");
  for (const char* s : {"transcriptions", "translations", "chat"}) {
    auto it = audio_by_source_.find(s);
    sample(out, "autoglm_audio_seconds_total", m + ",source=\"" + s + "\"",
           fmt_double(it == audio_by_source_.end() ? 0.0 : it->second.second));
  }
  header(out, "autoglm_http_requests_total", "counter", "HTTP responses by status code.");
  for (auto& [status, n] : http_by_status_)
    sample(out, "autoglm_http_requests_total", m + ",status=\"" + std::to_string(status) + "\"", std::to_string(n));
  return out;
}

}  // namespace autoglm::server
