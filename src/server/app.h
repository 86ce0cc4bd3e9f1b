// server/app.h: the state shared by the endpoint handlers (one per server): the engine and chat context
// once loaded, sampling defaults, metrics, and the in-flight generation jobs (for shutdown).
//
// Threads: the router runs on a connection's strand (an I/O thread) and does only cheap work there (auth,
// routing). Endpoints that take a JSON body run on the CPU pool: parsing, validation and prompt preparation
// (images, template, tokenizing); they come back to the strand (run_on_strand) to submit to the engine and to
// answer. So a large or hostile body never delays /health or another connection's stream.
// Speech (--asr-model): transcription runs on its own one-thread pool (asr_pool), so a long recording delays
// neither the CPU pool's parsing nor the I/O threads (endpoint_audio.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/thread_pool.hpp>

#include "autoglm/speech.h"
#include "chat/chat_session.h"
#include "server/api_error.h"
#include "server/http_connection.h"
#include "server/metrics.h"
#include "server/protocol.h"
#include "server/server.h"

namespace autoglm::server {

class generation_job;

enum class app_state { LOADING, READY, FAILED };

struct app {
  explicit app(const server_options& o) : options(o), cpu_pool(2), asr_pool(1) {}

  const server_options& options;
  std::atomic<app_state> state{app_state::LOADING};
  std::atomic<bool> draining{false};
  std::unique_ptr<engine> eng;              // set once by the loader thread before state becomes READY
  std::unique_ptr<chat_context> chat;
  generation_defaults defaults;
  server_metrics metrics;
  boost::asio::thread_pool cpu_pool;        // body parsing + validation + prompt preparation, off the I/O threads
  std::unique_ptr<speech_recognizer> asr;   // --asr-model, set by the loader before READY; null without one
  boost::asio::thread_pool asr_pool;        // audio decoding + transcription, one at a time (as the model runs them)
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
  std::atomic<bool> trim_scheduled{false};  // a malloc_trim is due (schedule_memory_trim)

  // In-flight generation jobs, so shutdown can cancel what outlives the grace period.
  std::mutex jobs_mutex;
  std::map<generation_job*, std::weak_ptr<generation_job>> jobs;
  std::atomic<int64_t> n_inflight{0};

  std::string make_id(const char* prefix);  // "chatcmpl-<hex>"
  bool ready() const { return state.load() == app_state::READY; }
};

// Routes one HTTP request (auth, CORS preflight, errors → OpenAI error JSON); bodies go to the CPU pool.
void route_request(app& a, std::shared_ptr<connection> conn, http_request&& req);

// Endpoint handlers (one file each). Those without a body run on the connection's strand. Those with one run
// on the CPU pool, get the parsed body (ordered_json, so the client's key order reaches the chat template,
// protocol.h) and the arrival time, throw for a bad request, and answer through run_on_strand.
void handle_health(app& a, const std::shared_ptr<connection>& conn);
void handle_models(app& a, const std::shared_ptr<connection>& conn, const std::string& model_id);
void handle_metrics(app& a, const std::shared_ptr<connection>& conn);
using arrival_time = std::chrono::steady_clock::time_point;
void handle_chat_completions(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body,
                             arrival_time arrival);
void handle_completions(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body,
                        arrival_time arrival);
void handle_tokenize(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body, arrival_time);
void handle_detokenize(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json&& body, arrival_time);
// POST /v1/audio/transcriptions (translate false) and /v1/audio/translations: a multipart/form-data body. Called
// on the strand; parses on the CPU pool and transcribes on the ASR pool (endpoint_audio.cpp).
void handle_audio(app& a, const std::shared_ptr<connection>& conn, http_request& req, bool translate);
// Runs `then` once every input_audio part of `messages` has become its transcript (chat/audio_parts.h): at once
// when there are none, else from the ASR pool after transcribing. `then` must keep `messages` alive; an exception
// from it after the hand-off becomes the error response. Throws the 400 that names --asr-model when the request
// has audio parts and the server no speech model.
void after_audio_parts(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json& messages,
                       std::function<void()> then);

// The OpenAI error for the exception being handled: api_error as is, invalid_request → 400 naming its param,
// other autoglm::error → 400, anything else → 500 (logged). Call only inside a catch block.
api_error current_api_error(const char* context);
// Sends `e` with the headers its status calls for (Retry-After on 503, ...). On the connection's strand only.
void send_api_error(const std::shared_ptr<connection>& conn, const api_error& e);

// Runs `fn` on the connection's strand (from the CPU pool); an exception from it becomes the error response.
template <class F>
void run_on_strand(const std::shared_ptr<connection>& conn, F fn) {
  net::post(conn->executor(), [conn, fn = std::move(fn)]() mutable {
    try {
      fn();
    } catch (...) {
      send_api_error(conn, current_api_error("answering a request"));
    }
  });
}

// After a large request body has been freed: returns free heap memory to the OS (glibc malloc_trim) at most
// once a second, on the CPU pool. Without it the heap kept what a large body and its parse had used.
void schedule_memory_trim(app& a);

// A parsed chat/tokenize request's template inputs as chat options: tools and chat_template_kwargs stay in the
// client's key order (ordered_json all the way to the template).
inline chat_options template_options(const template_params& p) {
  chat_options co;
  co.enable_thinking = p.enable_thinking;
  co.chat_template_kwargs = p.chat_template_kwargs;
  co.tools = p.tools;
  return co;
}
// Same, moving tools and chat_template_kwargs out of `p` (a tool schema can be large).
inline chat_options take_template_options(template_params& p) {
  chat_options co;
  co.enable_thinking = p.enable_thinking;
  co.chat_template_kwargs = std::move(p.chat_template_kwargs);
  co.tools = std::move(p.tools);
  return co;
}

// 404 unless `model` is empty or the served name (OpenAI answers model_not_found).
void check_model_name(const app& a, const std::string& model);

}  // namespace autoglm::server
