// runtime/request_state.cpp: request checks and the placeholder -> image row map, on the caller's thread.
#include "runtime/request_state.h"

#include "core/error.h"
#include "runtime/engine_impl.h"

namespace autoglm {

pending prepare_request(generation_request request, const model& m, int32_t max_model_len) {
  const model_info& mi = m.info();
  const sampling_params& sp = request.sampling;
  const int32_t n_prompt = int32_t(request.prompt.size());
  if (n_prompt == 0) throw invalid_request("the prompt is empty", "messages");
  if (n_prompt >= max_model_len)
    throw invalid_request("the prompt has " + std::to_string(n_prompt) + " tokens; this model's context is " +
                              std::to_string(max_model_len) + " tokens including at least one generated token",
                          "messages");
  for (int32_t t : request.prompt)
    if (t < 0 || t >= mi.vocab_size) throw invalid_request("prompt token id " + std::to_string(t) + " is out of range", "prompt");
  if (!(sp.temperature >= 0.0f)) throw invalid_request("temperature must be >= 0", "temperature");
  if (!(sp.top_p > 0.0f && sp.top_p <= 1.0f)) throw invalid_request("top_p must be in (0, 1]", "top_p");
  if (sp.top_k < 0) throw invalid_request("top_k must be >= 0", "top_k");
  if (!(sp.min_p >= 0.0f && sp.min_p <= 1.0f)) throw invalid_request("min_p must be in [0, 1]", "min_p");
  if (!(sp.repetition_penalty > 0.0f)) throw invalid_request("repetition_penalty must be > 0", "repetition_penalty");
  if (sp.max_tokens < 1) throw invalid_request("max_tokens must be >= 1", "max_tokens");
  if (request.benchmark_skip_prefill && (!request.images.empty() || request.return_prompt_logits))
    throw invalid_request("benchmark_skip_prefill takes a text prompt without return_prompt_logits",
                          "benchmark_skip_prefill");

  auto st = std::make_unique<request_state>();
  auto seq = std::make_unique<sequence>();
  seq->tokens = request.prompt;
  seq->n_prompt = n_prompt;
  seq->max_tokens = sp.max_tokens;
  if (!sp.ignore_eos) seq->stop_ids = mi.eos_token_ids;
  seq->stop_ids.insert(seq->stop_ids.end(), sp.stop_token_ids.begin(), sp.stop_token_ids.end());
  if (request.return_prompt_logits) seq->reuse_prefix = false;  // every position's logits are computed
  if (request.benchmark_skip_prefill) {
    seq->n_skip = n_prompt - 1;
    seq->reuse_prefix = false;
    seq->share_kv = false;  // its KV is garbage: never serve it to another request
  }

  // Placeholder token i of the prompt is row r of image k, in order.
  const size_t n_images = request.images.size();
  if (n_images > 0 && !mi.has_vision) throw invalid_request("this model does not take images", "messages");
  st->image_of_token.assign(size_t(n_prompt), -1);
  st->row_of_token.assign(size_t(n_prompt), 0);
  seq->extra_keys.assign(size_t(n_prompt), 0);
  for (const vision_input& im : request.images) {
    if (im.n_tokens() <= 0 || (im.pixel_values.empty() && !im.raw))
      throw invalid_request("an image has no pixels", "messages");
    st->image_keys.push_back(image_extra_key(im));
  }
  st->image_begin.assign(n_images, -1);
  st->image_end.assign(n_images, -1);
  size_t k = 0;
  int32_t row = 0;
  for (int32_t i = 0; i < n_prompt; ++i) {
    if (request.prompt[size_t(i)] != mi.image_token_id || mi.image_token_id < 0) continue;
    if (k >= n_images) throw invalid_request("the prompt has more image placeholders than images' tokens", "messages");
    st->image_of_token[size_t(i)] = int32_t(k);
    st->row_of_token[size_t(i)] = row;
    seq->extra_keys[size_t(i)] = st->image_keys[k];
    if (row == 0) st->image_begin[k] = i;
    st->image_end[k] = i + 1;
    if (++row == request.images[k].n_tokens()) {
      ++k;
      row = 0;
    }
  }
  if (k != n_images || row != 0)
    throw invalid_request("the prompt's image placeholders do not match the images (" + std::to_string(n_images) +
                              " images)", "messages");

  st->positions = m.compute_positions(request.prompt, request.images);
  if (int32_t(st->positions.t.size()) != n_prompt || int32_t(st->positions.h.size()) != n_prompt ||
      int32_t(st->positions.w.size()) != n_prompt)
    throw error("the model computed " + std::to_string(st->positions.t.size()) + " positions for a prompt of " +
                std::to_string(n_prompt) + " tokens");

  st->smp = std::make_unique<sampler>(sp, request.prompt);
  st->top_logprobs = sp.top_logprobs;
  st->return_prompt_logits = request.return_prompt_logits;
  st->embeds.resize(n_images);
  st->image_requested.assign(n_images, false);
  for (vision_input& im : request.images) st->images.push_back(std::make_shared<const vision_input>(std::move(im)));
  return {std::move(seq), std::move(st)};
}

}  // namespace autoglm
