// server/app.h: the state shared by the endpoint handlers (one per server): the engine and chat context
// once loaded, sampling defaults, metrics, and the in-flight generation jobs (for shutdown).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "chat/chat_session.h"
#include "server/http_connection.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "server/server.h"

namespace autoglm::server {

class generation_job;

enum class app_state { LOADING, READY, FAILED };

struct app {
  explicit app(const server_options& o) : options(o), cpu_pool(2) {}

  const server_options& options;
  std::atomic<app_state> state{app_state::LOADING};
  std::atomic<bool> draining{false};
  std::unique_ptr<engine> eng;              // set once by the loader thread before state becomes READY
  std::unique_ptr<chat_context> chat;
  generation_defaults defaults;
  server_metrics metrics;
  boost::asio::thread_pool cpu_pool;        // prompt preparation (image decode, template, tokenize) off I/O threads
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

  // In-flight generation jobs, so shutdown can cancel what outlives the grace period.
  std::mutex jobs_mutex;
  std::map<generation_job*, std::weak_ptr<generation_job>> jobs;
  std::atomic<int64_t> n_inflight{0};

  std::string make_id(const char* prefix);  // "chatcmpl-<hex>"
  bool ready() const { return state.load() == app_state::READY; }
};

// Routes one HTTP request (auth, CORS preflight, JSON parsing, errors → OpenAI error JSON).
void route_request(app& a, std::shared_ptr<connection> conn, http_request&& req);

// Endpoint handlers (one file each). They run on the connection's strand and may answer later.
void handle_health(app& a, const std::shared_ptr<connection>& conn);
void handle_models(app& a, const std::shared_ptr<connection>& conn, const std::string& model_id);
void handle_metrics(app& a, const std::shared_ptr<connection>& conn);
// Bodies are ordered_json so the client's key order reaches the chat template (protocol.h).
void handle_chat_completions(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body);
void handle_completions(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body);
void handle_tokenize(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body);
void handle_detokenize(app& a, const std::shared_ptr<connection>& conn, const nlohmann::ordered_json& body);

// A parsed chat/tokenize request's template inputs as chat options: tools and chat_template_kwargs stay in the
// client's key order (ordered_json all the way to the template).
inline chat_options template_options(const template_params& p) {
  chat_options co;
  co.enable_thinking = p.enable_thinking;
  co.chat_template_kwargs = p.chat_template_kwargs;
  co.tools = p.tools;
  return co;
}

// 404 unless `model` is empty or the served name (OpenAI answers model_not_found).
void check_model_name(const app& a, const std::string& model);

}  // namespace autoglm::server
