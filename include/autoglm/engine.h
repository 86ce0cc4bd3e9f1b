// autoglm/engine.h: the public C++ API of the engine. The server and the CLI use only this (and the chat layer).
//
// An engine owns one model, its paged KV cache and one engine thread that runs the continuous-batching loop:
// admit waiting requests while KV blocks allow, reuse cached prefix blocks, encode new images, run one forward
// over prefill chunks + decode tokens, sample, deliver events. Callbacks run on the engine thread and must
// return quickly (post the event to your own queue).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/model_runner.h"

namespace autoglm {

class tokenizer;

struct sampling_params {
  float temperature = 1.0f;         // 0 = greedy
  float top_p = 1.0f;
  int32_t top_k = 0;                // 0 = off
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  // HF semantics over prompt + generated tokens
  float frequency_penalty = 0.0f;   // OpenAI semantics over generated tokens
  float presence_penalty = 0.0f;
  std::optional<uint64_t> seed;     // reproducible sampling when set
  int32_t max_tokens = 256;         // capped by the context window
  std::vector<int32_t> stop_token_ids;  // in addition to the model's eos ids (unless ignore_eos)
  bool ignore_eos = false;
  int32_t top_logprobs = -1;        // -1: no logprobs; 0: the sampled token's; k: also the top k
};

struct generation_request {
  std::vector<int32_t> prompt;      // token ids, image placeholders already expanded (one per embedding row)
  std::vector<vision_input> images; // in placeholder order
  sampling_params sampling;
};

enum class finish_reason { NONE, STOP, LENGTH, CANCELLED, ERROR };
const char* finish_reason_name(finish_reason r);  // "stop", "length", "cancelled", "error"

struct token_logprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// One event per generated token; the last event of a request has finish != NONE (it may carry no token).
struct generation_event {
  uint64_t request_id = 0;
  bool has_token = false;
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<token_logprob> top_logprobs;
  finish_reason finish = finish_reason::NONE;
  std::string error;                 // set when finish == ERROR
  int32_t n_prompt_tokens = 0;
  int32_t n_generated_tokens = 0;
  int32_t n_cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
};

using event_callback = std::function<void(const generation_event&)>;

struct engine_options {
  std::string model_dir;
  int32_t n_threads = 0;             // 0 = all cores
  int32_t max_num_seqs = 16;         // sequences decoded together
  int32_t max_model_len = 0;         // 0 = min(config max_position_embeddings, what the KV budget allows)
  int32_t max_batch_tokens = 512;    // prefill chunk budget per step
  int32_t max_waiting = 256;         // bounded waiting queue; submit beyond it is refused
  int32_t kv_block_size = 16;
  size_t kv_cache_bytes = 0;         // 0 = enough for max_num_seqs * max_model_len (bounded)
  bool enable_prefix_caching = true;
  int32_t min_pixels = 0, max_pixels = 0;  // 0 = the model's preprocessor_config.json
};

struct engine_stats {
  int32_t n_running = 0;
  int32_t n_waiting = 0;
  int64_t n_prompt_tokens_total = 0;
  int64_t n_generated_tokens_total = 0;
  int64_t n_prefix_query_tokens = 0;   // prompt tokens looked up in the prefix cache
  int64_t n_prefix_hit_tokens = 0;     // of those, found cached
  int32_t kv_blocks_total = 0;
  int32_t kv_blocks_used = 0;
  int64_t n_images_encoded = 0;
  int64_t n_image_cache_hits = 0;
};

class engine {
 public:
  // Loads the model directory (throws autoglm::error with a clear message on bad files) and starts the engine thread.
  static std::unique_ptr<engine> create(const engine_options& options);
  virtual ~engine() = default;

  // Queues a request. Returns its id, or 0 when the waiting queue is full (the caller answers 503).
  // Throws autoglm::error for a request that can never run (prompt longer than the context, bad image).
  virtual uint64_t submit(generation_request request, event_callback on_event) = 0;
  // Stops a request within one step and frees its KV blocks; its last event has finish CANCELLED.
  virtual void cancel(uint64_t request_id) = 0;
  // Finishes (cancels) everything and joins the engine thread.
  virtual void shutdown() = 0;

  virtual engine_stats stats() const = 0;
  virtual const model_info& info() const = 0;
  virtual const tokenizer& get_tokenizer() const = 0;
  virtual int32_t max_model_len() const = 0;
};

}  // namespace autoglm
