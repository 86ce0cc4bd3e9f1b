// kernels/cpu/sample.h: SAMPLE, one token per logits row, the rule every backend follows bit for bit (the CUDA
// kernel finds the same token without sorting). The engine uses it where logits live on a GPU, so that only the
// token ids cross PCIe; on the CPU the runtime's sampler (runtime/sampler.h: penalties, logprobs) stays in charge,
// and this kernel is the reference the GPU one is tested against.
//
// Per row, with params (temperature T, top_k, top_p, min_p, u in [0, 1)) and logits l (NaN counts as -inf):
//   greedy (T < 1e-5 or top_k == 1): the largest l, lowest id on ties (all -inf: id 0);
//   otherwise s_i = l_i * (1/T) in F32, mx = max s (all -inf: id 0);
//   1. min-p: candidates are s_i > -inf with double(s_i) >= double(mx) + log(double(min_p)) (min_p > 0);
//   2. top-k (0 < top_k < candidates): the top_k largest s, ties broken towards the lower id;
//   3. weights w_i = floor(expf(s_i - mx) * 2^40) as integers, so sums are exact and do not depend on the order a
//      parallel device adds them in (a token under 2^-40 of the most likely one gets weight 0: never drawn);
//   4. top-p (top_p < 1): in order of s descending (ties: lower id first), the shortest prefix whose weight
//      reaches ceil(top_p * total) (at least one token);
//   5. draw: U = floor(u * kept weight); in id order, the first kept token whose running weight sum exceeds U
//      (rounding left none: the last kept token).
// This is runtime/sampler.h's order (vLLM's) without penalties and logprobs; its draw walks ids in order instead
// of candidates in the sampler's order, so the same seed does not give the same token on the CPU and the GPU.
#pragma once

#include <cstdint>

#include "core/kernel_registry.h"

namespace autoglm::cpu {

constexpr float k_greedy_temperature = 1e-5f;       // below it: greedy (vLLM's _SAMPLING_EPS)
constexpr double k_sample_weight_scale = 1099511627776.0;  // 2^40: fixed-point weights (step 3)

// Registered kernel (F32 logits), signature as kernel_sig::sample; rows run in parallel on kc's pool.
void sample_kernel(const kernel_context& kc, const tensor& logits, const tensor& params, tensor& out);

// One row (the rule above); params: k_sample_params floats.
int32_t sample_row(const float* logits, int64_t vocab, const float* params);

}  // namespace autoglm::cpu
