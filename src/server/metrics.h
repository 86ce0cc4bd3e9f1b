// server/metrics.h: the server's Prometheus metrics, written by hand in the text exposition format 0.0.4.
// Counters and histograms are updated from I/O threads (atomics / a mutex per histogram); engine gauges
// (running, waiting, KV usage, prefix-cache hits) are read from engine_stats when /metrics is scraped.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace autoglm::server {

// A cumulative histogram with fixed upper bounds (seconds).
class histogram {
 public:
  explicit histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends "<name>_bucket{<labels>,le="..."} n" lines, then _sum and _count.
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // [bounds.size() + 1], the last is +Inf
  double sum_ = 0.0;
  uint64_t n_ = 0;
};

// Engine-side numbers sampled at scrape time (a copy of engine_stats fields, kept here so this file does not
// depend on the runtime).
struct engine_gauges {
  bool ready = false;
  int32_t n_running = 0, n_waiting = 0;
  int64_t n_prompt_tokens_total = 0, n_generated_tokens_total = 0;
  int64_t n_prefix_query_tokens = 0, n_prefix_hit_tokens = 0;
  int32_t kv_blocks_total = 0, kv_blocks_used = 0;
};

// HTTP-layer numbers, updated by the listener and connections (http_connection.cpp, http_listener.cpp) from any
// I/O thread and read when /metrics is scraped.
struct http_gauges {
  std::atomic<int64_t> n_open_connections{0};
  std::atomic<int64_t> queued_write_bytes{0};    // response bytes not yet taken by the kernel, all connections
  std::atomic<uint64_t> n_over_capacity{0};      // connections beyond --max-connections (only /health answered)
  std::atomic<uint64_t> n_slow_clients_dropped{0};  // closed past --max-queued-bytes or --write-timeout
  std::atomic<uint64_t> n_handler_exceptions{0};    // connections closed because one of their handlers threw
  std::atomic<uint64_t> n_accept_errors{0};         // failed accepts (out of file descriptors, ...)
};

class server_metrics {
 public:
  server_metrics();

  http_gauges http;

  void on_http_response(int status);
  void on_request_finished(const std::string& finish_reason, int32_t n_prompt, int32_t n_generated);
  void observe_ttft(double seconds) { ttft_.observe(seconds); }
  void observe_inter_token(double seconds) { itl_.observe(seconds); }
  void observe_e2e(double seconds) { e2e_.observe(seconds); }
  void observe_queue_time(double seconds) { queue_.observe(seconds); }
  // A recording transcribed by the speech model; source: transcriptions | translations | chat (input_audio).
  void on_audio_transcribed(const std::string& source, double audio_seconds);

  // The whole exposition, HELP/TYPE lines included. model_name becomes a label on every series.
  std::string render(const std::string& model_name, const engine_gauges& g) const;

 private:
  mutable std::mutex mutex_;  // guards the maps
  std::map<int, uint64_t> http_by_status_;
  std::map<std::string, uint64_t> finished_by_reason_;
  std::map<std::string, std::pair<uint64_t, double>> audio_by_source_;  // requests, audio seconds
  std::atomic<int64_t> prompt_tokens_{0}, generation_tokens_{0};
  histogram ttft_, itl_, e2e_, queue_;
};

// Escapes a label value (backslash, double quote, newline) as the text format requires.
std::string prometheus_escape_label(const std::string& v);

}  // namespace autoglm::server
