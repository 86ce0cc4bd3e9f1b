// runtime/sampler.h: turns one logits row [vocab] into the next token of one request, with the request's
// penalties, truncation (top-k / top-p / min-p), temperature, its own seeded RNG and the logprobs it asked for.
//
// Order (vLLM v1 sampler):
//   1. logprobs are taken from the RAW model logits (log-softmax before penalties and temperature), which is
//      vLLM's default logprobs_mode "raw_logprobs" (and what OpenAI clients see from vLLM);
//   2. repetition penalty (HF semantics) over prompt + generated tokens: logit > 0 -> logit / p, else logit * p;
//   3. frequency / presence penalties (OpenAI semantics) over GENERATED tokens only:
//      logit -= frequency * count + presence * (count > 0);
//   4. greedy (temperature < 1e-5 or top_k == 1): argmax of the penalized logits, lowest id on ties;
//   5. temperature: logit / T;
//   6. min-p: drop tokens whose probability < min_p * max probability;
//   7. top-k: keep the k largest logits;
//   8. top-p: keep the smallest set of most probable tokens (renormalized after 6-7) whose mass reaches top_p;
//   9. draw from the renormalized remainder with the request's RNG.
// min-p and top-k commute (each keeps the max and thresholds independently); top-p depends on both.
#pragma once

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "autoglm/engine.h"

namespace autoglm {

struct sample_result {
  int32_t token = -1;
  float logprob = 0.0f;                    // raw-model log-probability of `token` (when logprobs were asked for)
  std::vector<token_logprob> top_logprobs;  // the k most probable raw-model tokens, descending
};

class sampler {
 public:
  // prompt: the request's prompt ids (repetition penalty counts them). Unseeded params draw a random seed.
  sampler(const sampling_params& params, const std::vector<int32_t>& prompt);

  // logits: [vocab], overwritten (penalties, temperature). Does not record the token: call accept().
  sample_result sample(float* logits, int32_t vocab);
  // Records a generated token for the penalties.
  void accept(int32_t token);

  bool is_greedy() const;

  // True when sample() needs nothing but what the SAMPLE op takes (no penalties, no logprobs): the token can
  // then be drawn where the logits are, on a GPU (kernels/cpu/sample.h's rule).
  bool device_sampleable() const;
  // SAMPLE's parameter row (k_sample_params floats) for the next token; draws its uniform number from this
  // sampler's RNG, so call it once per token. Then accept() the token as after sample().
  void device_params(float* row);

 private:
  void apply_penalties(float* logits, int32_t vocab) const;
  void add_seen(int32_t token);

  sampling_params params_;
  std::vector<int32_t> seen_;  // distinct prompt + generated ids (repetition penalty)
  std::unordered_map<int32_t, int32_t> seen_index_;
  std::unordered_map<int32_t, int32_t> generated_counts_;
  std::mt19937_64 rng_;
  std::vector<int32_t> candidates_;  // scratch
};

}  // namespace autoglm
