// runtime/sampler.cpp: see sampler.h for the order of operations (vLLM v1) and the logprobs convention.
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/kernel_registry.h"

namespace autoglm {

namespace {

constexpr float k_sampling_eps = 1e-5f;  // vLLM's _SAMPLING_EPS: temperatures below it mean greedy

int32_t argmax(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// Raw-model logprobs of `token` and the top k, from a log-softmax over the whole row.
void fill_logprobs(const float* logits, int32_t vocab, int32_t token, int32_t k, sample_result& out,
                   std::vector<int32_t>& scratch) {
  const float mx = logits[argmax(logits, vocab)];
  double sum = 0.0;
  for (int32_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i] - mx));
  const float lse = mx + float(std::log(sum));
  out.logprob = logits[token] - lse;
  if (k <= 0) return;
  k = std::min(k, vocab);
  scratch.resize(size_t(vocab));
  for (int32_t i = 0; i < vocab; ++i) scratch[size_t(i)] = i;
  std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  out.top_logprobs.clear();
  for (int32_t i = 0; i < k; ++i) out.top_logprobs.push_back({scratch[size_t(i)], logits[scratch[size_t(i)]] - lse});
}

}  // namespace

sampler::sampler(const sampling_params& params, const std::vector<int32_t>& prompt) : params_(params) {
  rng_.seed(params.seed ? *params.seed : (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}());
  if (params_.repetition_penalty != 1.0f)
    for (int32_t t : prompt) add_seen(t);
}

bool sampler::is_greedy() const { return params_.temperature < k_sampling_eps || params_.top_k == 1; }

bool sampler::device_sampleable() const {
  return params_.repetition_penalty == 1.0f && params_.frequency_penalty == 0.0f && params_.presence_penalty == 0.0f &&
         params_.top_logprobs < 0;
}

void sampler::device_params(float* row) {
  row[SP_TEMPERATURE] = is_greedy() ? 0.0f : params_.temperature;
  row[SP_TOP_K] = float(params_.top_k);
  row[SP_TOP_P] = params_.top_p;
  row[SP_MIN_P] = params_.min_p;
  // The largest float below 1: the rule wants u in [0, 1).
  row[SP_UNIFORM] = is_greedy() ? 0.0f
                                : std::min(float(std::uniform_real_distribution<double>(0.0, 1.0)(rng_)), 0.99999994f);
}

void sampler::add_seen(int32_t token) {
  if (seen_index_.emplace(token, int32_t(seen_.size())).second) seen_.push_back(token);
}

void sampler::accept(int32_t token) {
  ++generated_counts_[token];
  if (params_.repetition_penalty != 1.0f) add_seen(token);
}

void sampler::apply_penalties(float* logits, int32_t vocab) const {
  const float rp = params_.repetition_penalty;
  if (rp != 1.0f) {
    for (int32_t t : seen_) {
      if (t < 0 || t >= vocab) continue;
      float& l = logits[t];
      l = l > 0.0f ? l / rp : l * rp;
    }
  }
  const float fp = params_.frequency_penalty, pp = params_.presence_penalty;
  if (fp != 0.0f || pp != 0.0f) {
    for (const auto& [t, count] : generated_counts_) {
      if (t < 0 || t >= vocab) continue;
      logits[t] -= fp * float(count) + (count > 0 ? pp : 0.0f);
    }
  }
}

sample_result sampler::sample(float* logits, int32_t vocab) {
  AG_CHECK(vocab > 0, "empty logits row");
  sample_result out;
  // Raw logprobs need the unprocessed row; keep a copy only when asked for.
  std::vector<float> raw;
  if (params_.top_logprobs >= 0) raw.assign(logits, logits + vocab);

  apply_penalties(logits, vocab);

  if (is_greedy()) {
    out.token = argmax(logits, vocab);
  } else {
    const float inv_t = 1.0f / params_.temperature;
    for (int32_t i = 0; i < vocab; ++i) logits[i] *= inv_t;
    const float mx = logits[argmax(logits, vocab)];

    // min-p: p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p).
    float threshold = -std::numeric_limits<float>::infinity();
    if (params_.min_p > 0.0f) threshold = mx + std::log(params_.min_p);
    candidates_.clear();
    for (int32_t i = 0; i < vocab; ++i)
      if (logits[i] >= threshold && logits[i] > -std::numeric_limits<float>::infinity()) candidates_.push_back(i);
    if (candidates_.empty()) candidates_.push_back(argmax(logits, vocab));  // all -inf: fall back to argmax

    auto by_logit_desc = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    const int32_t n_cand = int32_t(candidates_.size());
    if (params_.top_k > 0 && params_.top_k < n_cand) {
      std::nth_element(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(), by_logit_desc);
      candidates_.resize(size_t(params_.top_k));
    }

    if (params_.top_p < 1.0f) {
      double total = 0.0;
      for (int32_t t : candidates_) total += std::exp(double(logits[t] - mx));
      // Keep the shortest descending prefix whose renormalized mass reaches top_p (at least one token). The
      // nucleus is almost always small: sort the top 1024 first and the whole vocabulary only if that falls short.
      auto nucleus = [&](size_t n_sorted) {
        double acc = 0.0;
        for (size_t keep = 0; keep < n_sorted;) {
          acc += std::exp(double(logits[candidates_[keep]] - mx)) / total;
          ++keep;
          if (acc >= double(params_.top_p)) return keep;
        }
        return size_t(0);
      };
      const size_t n_head = std::min<size_t>(candidates_.size(), 1024);
      std::partial_sort(candidates_.begin(), candidates_.begin() + ptrdiff_t(n_head), candidates_.end(), by_logit_desc);
      size_t keep = nucleus(n_head);
      if (keep == 0) {
        std::sort(candidates_.begin(), candidates_.end(), by_logit_desc);
        keep = nucleus(candidates_.size());
        if (keep == 0) keep = candidates_.size();  // rounding left the sum a hair under top_p
      }
      candidates_.resize(keep);
    }

    double total = 0.0;
    for (int32_t t : candidates_) total += std::exp(double(logits[t] - mx));
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) * total;
    double acc = 0.0;
    out.token = candidates_.back();
    for (int32_t t : candidates_) {
      acc += std::exp(double(logits[t] - mx));
      if (u < acc) {
        out.token = t;
        break;
      }
    }
  }

  if (params_.top_logprobs >= 0) fill_logprobs(raw.data(), vocab, out.token, params_.top_logprobs, out, candidates_);
  return out;
}

}  // namespace autoglm
