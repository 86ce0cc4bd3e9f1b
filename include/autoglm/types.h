// autoglm/types.h: plain value types shared by the public API and the layers under it: what a loaded model
// is (model_info), one preprocessed image (vision_input), sampling parameters, requests and the events an
// engine delivers. No tensors, no backends, no model internals.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autoglm/bulk_allocator.h"

namespace autoglm {

struct model_info {
  std::string architecture;          // "Glm4vForConditionalGeneration"
  int32_t vocab_size = 0;            // logits width (embedding rows)
  int32_t hidden_size = 0;
  int32_t n_layers = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t max_position_embeddings = 0;
  int32_t image_token_id = -1;       // placeholder id expanded to one token per image embedding row
  int32_t image_start_token_id = -1;
  int32_t image_end_token_id = -1;
  int32_t video_start_token_id = -1;
  int32_t video_end_token_id = -1;
  std::vector<int32_t> eos_token_ids;  // union of config.json and generation_config.json
  bool has_vision = false;
};

// One axis of a separable bicubic resample in fixed point, as media/resize_bicubic.cpp computes it (Pillow's or
// torchvision's taps): output i = clamp((2^(precision-1) + sum_k weight[i*ksize + k] * in[first[i] + k]) >>
// precision, 0, 255) over count[i] taps. in_size == out_size: no pass on this axis.
struct resample_axis {
  int32_t in_size = 0, out_size = 0, ksize = 0, precision = 0;
  std::vector<int32_t> first, count, weight;  // [out_size], [out_size], [out_size * ksize]
};

// A decoded image with what a device needs to preprocess it itself (Glm4vImageProcessor's resize, then rescale and
// normalize by table, then the patch layout; ops::image_patches): for a 1080x2400 screenshot 7.8 MB of bytes go to
// a GPU instead of 63 MB of F32 patch rows, and the host does no per-pixel work.
struct raw_image {
  int32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;            // [height, width, 3]
  resample_axis horizontal, vertical;  // width -> grid_w * patch, height -> grid_h * patch
  std::array<float, 768> byte_values{};  // the patch value of byte b in channel c at [c * 256 + b]
};

// One preprocessed image as the model's vision tower consumes it.
struct vision_input {
  int32_t grid_t = 1, grid_h = 0, grid_w = 0;  // patch grid before the 2x2 merge
  pixel_array pixel_values;  // [grid_t*grid_h*grid_w, patch_dim] (patch_dim = 3*2*14*14); resize() leaves it unset
  // Instead of pixel_values (chat_context_options::preprocess_on_device): the image as decoded, its patch rows made
  // on the vision tower's device (one frame: grid_t 1).
  std::shared_ptr<const raw_image> raw;
  uint64_t content_hash = 0;                   // hash of the decoded pixels (cache key)
  int32_t n_tokens(int32_t merge = 2) const { return grid_t * (grid_h / merge) * (grid_w / merge); }
};

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

// Sampling defaults for the fields a request leaves out: the model's generation_config.json (as vLLM and
// transformers read it), else OpenAI's defaults. load_generation_defaults (autoglm/engine.h) reads them.
struct generation_defaults {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  std::optional<int32_t> max_new_tokens;
};

struct generation_request {
  std::vector<int32_t> prompt;       // token ids, image placeholders already expanded (one per embedding row)
  std::vector<vision_input> images;  // in placeholder order
  sampling_params sampling;
  // The first token's event carries the logits of every prompt position ([n_prompt, vocab]). Every position is
  // then computed (no prefix-cache reuse for this request). For parity checks and `autoglm logits`.
  bool return_prompt_logits = false;
  // Benchmarks only: the prompt's positions but the last count as already in the KV cache without being
  // computed (their slots hold whatever is there), so decode at a long context can be timed without its
  // prefill. The output is meaningless; such KV is never shared through the prefix cache.
  bool benchmark_skip_prefill = false;
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
  std::vector<float> prompt_logits;    // [n_prompt, vocab] on the first token's event when return_prompt_logits
};

}  // namespace autoglm
