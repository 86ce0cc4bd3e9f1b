// runtime/request_state.h: what the engine keeps about one request beside its scheduler sequence, and the
// caller-thread preparation that checks a request against the model and builds both.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "autoglm/engine.h"
#include "core/tensor.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"

namespace autoglm {

struct request_state {
  event_callback on_event;
  std::unique_ptr<sampler> smp;
  int32_t top_logprobs = -1;
  prompt_positions positions;  // M-RoPE positions of the prompt

  // Images, shared with the vision worker's queue (a cancelled request may leave while its image encodes).
  std::vector<std::shared_ptr<const vision_input>> images;
  std::vector<uint64_t> image_keys;      // [n_images] prefix-cache / embedding-cache key
  std::vector<int32_t> image_begin;      // [n_images] prompt index of its first placeholder
  std::vector<int32_t> image_end;        // [n_images] one past its last placeholder
  std::vector<int32_t> image_of_token;   // [n_prompt]: image index of a placeholder token, else -1
  std::vector<int32_t> row_of_token;     // [n_prompt]: its row in that image's embedding
  std::vector<tensor> embeds;            // [n_images] [n_tokens, hidden], empty until attached
  std::vector<bool> image_requested;     // [n_images] waiting for the vision worker
  int32_t n_images_pending = 0;          // images waiting for the vision worker

  // Not yet in the scheduler: waiting for the vision worker (owned here until then).
  std::unique_ptr<sequence> parked;

  bool return_prompt_logits = false;
  bool prompt_logits_sent = false;
  std::vector<float> prompt_logits;      // [n_prompt, vocab] filled chunk by chunk
};

struct pending {
  std::unique_ptr<sequence> seq;
  std::unique_ptr<request_state> state;
};

// Caller thread: checks the request (prompt, sampling, images against their placeholders) and builds its
// sequence and state. Throws invalid_request for a request that can never run.
pending prepare_request(generation_request request, const model& m, int32_t max_model_len);

}  // namespace autoglm
