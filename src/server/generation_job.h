// server/generation_job.h: one HTTP generation request in flight (n choices = n engine requests).
//
// Lives on its connection's strand. Engine callbacks (engine thread) only post events here. Each choice has an
// output_stream (detokenize, stop strings, reasoning split); the job turns its deltas into SSE chunks or, when
// every choice is done, one JSON body. A client disconnect cancels every unfinished engine request.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "chat/output_stream.h"
#include "server/app.h"

namespace autoglm::server {

enum class job_kind { CHAT, COMPLETION };

struct job_choice {
  generation_request request;
  output_options output;
  int32_t prompt_group = 0;   // choices of the same prompt share one prompt_tokens count in usage
  std::string echo_text;      // /v1/completions echo: the prompt text, sent before the generated text
};

struct job_options {
  job_kind kind = job_kind::CHAT;
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  bool return_reasoning = false;
  std::chrono::steady_clock::time_point arrival;
};

class generation_job : public std::enable_shared_from_this<generation_job> {
 public:
  generation_job(app& a, std::shared_ptr<connection> conn, job_options options);
  ~generation_job();

  // Submits every choice (on the strand). Queue full → 503 + Retry-After; a request the engine can never run
  // → 400. Then streams or waits.
  void start(std::vector<job_choice> choices);
  // Cancels every unfinished engine request (client gone, or shutdown past its grace period).
  void cancel_all(const char* why);
  net::any_io_executor executor() { return conn_->executor(); }

 private:
  struct choice_state {
    uint64_t engine_id = 0;
    std::unique_ptr<output_stream> out;
    int32_t prompt_group = 0;
    std::string echo_text;
    bool done = false;
    std::string finish_reason;
    std::string error;
    int32_t n_prompt = 0, n_cached = 0, n_tokens = 0;
    bool got_event = false, got_token = false;
    std::chrono::steady_clock::time_point last_token;
    nlohmann::json logprobs = nlohmann::json::array();          // chat: every entry (non-streaming)
    nlohmann::json pending_logprobs = nlohmann::json::array();  // chat streaming: not sent yet
    // completions (legacy shape)
    nlohmann::json lp_tokens = nlohmann::json::array(), lp_values = nlohmann::json::array(),
                   lp_top = nlohmann::json::array(), lp_offsets = nlohmann::json::array();
    size_t text_offset = 0;
  };

  void on_event(size_t i, const generation_event& ev);
  void add_logprobs(choice_state& c, const generation_event& ev);
  void emit(size_t i, const output_delta& d, const char* finish);
  void finish_choice(size_t i, std::string reason);
  void complete();
  nlohmann::json usage() const;
  nlohmann::json chunk_base() const;

  app& app_;
  std::shared_ptr<connection> conn_;
  job_options opt_;
  std::string id_;
  int64_t created_ = 0;
  std::vector<choice_state> choices_;
  size_t n_done_ = 0;
  bool completed_ = false;
  bool registered_ = false;
};

}  // namespace autoglm::server
